"""JWT authentication (pyjwt): verify tokens into `Principal`s, mint dev tokens.

Claims laneway reads:

- ``sub``: who (shown in the audit log).
- ``tenants``: a list of tenant names, or ``tenant``: one name; ``"*"`` is
  every tenant.
- ``scope``: space-separated (``"subscribe publish"``), or ``scopes``: a list;
  any of ``subscribe``, ``publish``, ``admin`` (admin implies the others).
- ``exp``: required. ``iss`` / ``aud``: checked when configured.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jwt

from ..core import LanewayError, Principal, validate_tenant
from ._config import GatewayConfig

__all__ = [
    "Authenticator",
    "AuthError",
    "SCOPES",
    "load_or_create_secret",
    "AnonymousPolicy",
    "RefusalLog",
    "is_loopback_origin",
]

SCOPES = ("subscribe", "publish", "admin")


class AuthError(LanewayError):
    """A token that is missing, malformed, expired or not ours."""


class Authenticator:
    def __init__(self, config: GatewayConfig, secret: str | None = None) -> None:
        self._issuer = config.jwt_issuer
        self._audience = config.jwt_audience
        public = config.jwt_public_key
        if public is not None and not public.lstrip().startswith("-----BEGIN"):
            public = Path(public).read_text()  # a path to a PEM file
        self._secret = config.jwt_secret or (secret if public is None else None)
        self._key: Any = public if public is not None else self._secret
        if self._key is None:
            raise LanewayError("no JWT key: set gateway jwt_secret or jwt_public_key")
        default_algorithms = ("RS256", "ES256") if public is not None else ("HS256",)
        self._algorithms = list(config.jwt_algorithms or default_algorithms)

    @property
    def can_mint(self) -> bool:
        return self._secret is not None

    def verify(self, token: str) -> Principal:
        """The token's principal, or `AuthError` saying what is wrong."""
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        return principal_from_claims(claims)

    def mint(
        self,
        subject: str,
        tenants: list[str],
        scopes: list[str],
        *,
        ttl_s: float = 24 * 3600,
        now: float | None = None,
    ) -> str:
        """An HS256 token for development and tests (needs the shared secret)."""
        if self._secret is None:
            raise AuthError("minting needs the HS256 secret; this gateway verifies with a public key")
        for tenant in tenants:
            if tenant != "*":
                validate_tenant(tenant)
        bad = [s for s in scopes if s not in SCOPES]
        if bad:
            raise AuthError(f"unknown scope(s) {bad}; choose from {list(SCOPES)}")
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "sub": subject,
            "tenants": tenants,
            "scope": " ".join(scopes),
            "iat": issued,
            "exp": issued + int(ttl_s),
        }
        if self._issuer:
            claims["iss"] = self._issuer
        if self._audience:
            claims["aud"] = self._audience
        return jwt.encode(claims, self._secret, algorithm="HS256")


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    tenants = claims.get("tenants")
    if tenants is None and "tenant" in claims:
        tenants = [claims["tenant"]]
    if not isinstance(tenants, list) or not tenants or not all(isinstance(t, str) for t in tenants):
        raise AuthError("token has no tenants: add a 'tenants' list or a 'tenant' claim")
    scope = claims.get("scope", claims.get("scopes"))
    scopes = scope.split() if isinstance(scope, str) else scope
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise AuthError("token has no scopes: add 'scope' (space-separated) or 'scopes' (a list)")
    exp = claims.get("exp")
    expires_ms = int(exp * 1000) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None
    return Principal(str(claims.get("sub", "anonymous")), tuple(tenants), tuple(scopes), expires_ms)


def load_or_create_secret(directory: Path) -> str:
    """The data dir's development secret (``jwt.secret``, mode 0600),
    created on first use; `laneway token --data DIR` reads the same file."""
    path = directory / "jwt.secret"
    directory.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def _is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True  # RFC 6761: resolves to loopback, never to a rebinding attacker
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_origin(origin: str) -> bool:
    """``http(s)://localhost:PORT``, ``http://127.0.0.1:PORT``, ``http://[::1]``..."""
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.hostname is not None and _is_loopback_host(parts.hostname)


def _host_name(host_header: str) -> str:
    """The name of a Host header without its port (IPv6 in brackets kept whole)."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class AnonymousRefusal(NamedTuple):
    """forbidden: the request itself is suspect (its Origin or Host): 403 /
    4003. Otherwise it simply lacks a token: 401 / 4001."""

    forbidden: bool
    message: str


class RefusalLog:
    """Logs a refused anonymous compat request once per (client, reason):
    enough for an operator to see why a hook script's events go nowhere,
    bounded so a flood of refusals cannot grow it."""

    LIMIT = 1024

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._seen: set[tuple[str | None, str]] = set()

    def note(self, client: str | None, reason: str) -> None:
        key = (client, reason)
        if key in self._seen:
            return
        if len(self._seen) >= self.LIMIT:
            self._seen.clear()
        self._seen.add(key)
        self._log.warning("refused a HookEvent request from %s without a token: %s", client or "an unknown client", reason)


class AnonymousPolicy:
    """Who may use the HookEvent compatibility routes without a token.

    The peer address is not enough on its own: any web page the user opens
    runs on this machine too. A page can POST ``text/plain`` cross-origin
    without a preflight, open a WebSocket to any origin, and, through DNS
    rebinding, make its own domain resolve to 127.0.0.1. So an anonymous
    request must also:

    - come with no ``Origin`` (a hook script, curl) or a loopback origin
      (a local dashboard such as the observability project's Vue client on
      ``http://localhost:5173``) or one listed in ``cors_origins``;
    - name in ``Host`` an IP address or ``localhost``: a rebinding page's
      requests carry its own domain name there.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self.enabled = config.anonymous_compat
        self._networks = [ipaddress.ip_network(n) for n in config.anonymous_networks]
        self._origins = frozenset(o for o in config.cors_origins if o != "*")
        # A hook script swallows the answer and exits 0: without a log line
        # nobody learns why every event is lost.
        self.refusals = RefusalLog(logging.getLogger("laneway.gateway"))

    def origin_allowed(self, origin: str) -> bool:
        return origin in self._origins or is_loopback_origin(origin)

    def refusal(self, peer: str | None, host: str | None, origin: str | None) -> AnonymousRefusal | None:
        """Why this request may not go without a token, or None if it may
        (logged once per client and reason)."""
        why = self._refusal(peer, host, origin)
        if why is not None:
            self.refusals.note(peer, why.message)
        return why

    def _refusal(self, peer: str | None, host: str | None, origin: str | None) -> AnonymousRefusal | None:
        if not self.enabled:
            return AnonymousRefusal(
                False,
                "anonymous access to the HookEvent routes is off: start the server with `laneway serve --compat` "
                "(or gateway option anonymous_compat = true, LANEWAY_GATEWAY_ANONYMOUS_COMPAT=1), or send a token",
            )
        try:
            address = ipaddress.ip_address(peer) if peer is not None else None
        except ValueError:
            address = None
        if address is None or not any(address in network for network in self._networks):
            return AnonymousRefusal(False, f"anonymous access is allowed only from {', '.join(map(str, self._networks))}; send a token")
        if origin is not None and (origin == "null" or not self.origin_allowed(origin)):
            return AnonymousRefusal(
                True, f"anonymous requests from the web origin {origin!r} are refused (only loopback origins and cors_origins); send a token"
            )
        name = _host_name(host or "")
        try:
            ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            if not _is_loopback_host(name):
                return AnonymousRefusal(
                    True, f"anonymous requests must name an IP address or localhost in Host, not {host!r} (DNS rebinding guard); send a token"
                )
        return None
