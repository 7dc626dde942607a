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

import os
import secrets
import time
from pathlib import Path
from typing import Any

import jwt

from ..core import LanewayError, Principal, validate_tenant
from ._config import GatewayConfig

__all__ = ["Authenticator", "AuthError", "SCOPES", "load_or_create_secret"]

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
