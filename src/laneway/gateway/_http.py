"""The HTTP API, as an ASGI app served by hypercorn (trio worker).

Routes (docs/protocol.md has request and response examples):

    POST  /api/v1/events                          publish one event or a JSON array
    GET   /api/v1/tenants/{t}/events              recent (priority-aware), filtered
    GET   /api/v1/tenants/{t}/sessions/{s}/events history from the WAL, after_seq
    GET   /api/v1/tenants/{t}/stats               statistics
    GET   /api/v1/tenants/{t}/config              current settings          (admin)
    PATCH /api/v1/tenants/{t}/config              change settings, no restart (admin)
    GET   /api/v1/tenants/{t}/effects             effects, ?state= &session=
    POST  /api/v1/tenants/{t}/effects/{key}/retry|discard  act on one     (admin)
    GET   /api/v1/tenants/{t}/tier, PUT ...        a tenant's tier (PUT: admin)
    PUT   /api/v1/workspaces/{w}                  a workspace's tenants   (admin on *)
    GET   /api/v1/sla                             the runner's SLA rows   (subscribe on *)
    GET   /api/v1/jobs, POST .../jobs/{n}/trigger recurring jobs, runs  (admin on *)
    GET   /api/v1/audit                           administrative changes    (admin)
    GET   /api/v2/summaries/bulk                  per-session and per-tenant summaries
    GET   /api/v1/schema                          JSON Schema of the wire protocol
    GET   /healthz, /metrics                      liveness, Prometheus text
    POST  /events, GET /events/recent, GET /events/filter-options,
    POST  /events/{id}/respond
                                                  HookEvent compatibility routes
    GET   /, /static/{file}                       the live dashboard (static files)
    GET   /api                                    an index of these routes

Every API handler answers JSON; errors are ``{"error": name, "message": text}``
with a 4xx/5xx status. Engine calls that may block (WAL reads, commits) run
off the event loop.
"""

from __future__ import annotations

import importlib.resources
import logging
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from ..core import (
    ITEM_FIELDS,
    DerivedKey,
    InvalidEvent,
    InvalidKey,
    Item,
    LanewayError,
    Principal,
    TenantConfig,
    validate_session,
    validate_tenant,
    wire_schema,
)
from ._auth import AnonymousPolicy, Authenticator, AuthError, is_loopback_origin
from ._compat import encode_json_safely, from_hook_event, hook_event, original_names, recent_across_tenants
from ._config import GatewayConfig
from ._hitl import ANSWER_FIELDS, RESPONSE_TYPE, annotate, response_key
from ._hub import Hub
from ._idempotency import KeyHolds, idempotency_base, request_fingerprint
from ._metrics import render_metrics
from ._request import HttpError, Page, Request, http_error

if TYPE_CHECKING:
    from ..engine import Engine

__all__ = ["HttpApp", "HttpError"]

log = logging.getLogger("laneway.gateway")

_json = msgspec.json.Encoder()
_TENANT_SETTINGS = frozenset(f.name for f in msgspec.structs.fields(TenantConfig))

Handler = Callable[..., Awaitable[Any]]

_CONTENT_TYPES = {
    "html": b"text/html; charset=utf-8",
    "js": b"text/javascript; charset=utf-8",
    "css": b"text/css; charset=utf-8",
}
_CSP = b"default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


_PARAM = re.compile(r"\{(?P<name>[a-z_]+)(?::(?P<regex>(?:[^{}]|\{[0-9,]+\})+))?\}")


def _route(template: str) -> tuple[re.Pattern[str], str]:
    """A route template as (the pattern that matches a path, the template as
    shown): ``{name}`` matches one path segment, ``{name:regex}`` what the
    regex does, and shows as ``{name}``."""
    parts, shown, position = [], [], 0
    for m in _PARAM.finditer(template):
        parts.append(re.escape(template[position : m.start()]))
        shown.append(template[position : m.start()])
        parts.append(f"(?P<{m['name']}>{m['regex'] or '[^/]+'})")
        shown.append("{" + m["name"] + "}")
        position = m.end()
    parts.append(re.escape(template[position:]))
    shown.append(template[position:])
    return re.compile("".join(parts)), "".join(shown)


def _load_static() -> dict[str, bytes]:
    """The dashboard's files, read once: they ship inside the package."""
    folder = importlib.resources.files("laneway.gateway") / "static"
    return {
        entry.name: entry.read_bytes()
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.rsplit(".", 1)[-1] in _CONTENT_TYPES
    }


class HttpApp:
    """The ASGI application. `hub` gives it the gateway's counters."""

    def __init__(self, engine: Engine, config: GatewayConfig, auth: Authenticator, hub: Hub) -> None:
        self.engine = engine
        self.config = config
        self.auth = auth
        self.hub = hub
        self.requests: Counter[tuple[str, int]] = Counter()
        # name -> a check that returns what is wrong with that component, or None.
        self.checks: dict[str, Callable[[], str | None]] = {}
        self.anonymous = AnonymousPolicy(config)
        self._idempotency = KeyHolds()
        # Templates, as /api shows them; `{name}` is one path segment, and
        # `{name:regex}` narrows it.
        routes: list[tuple[str, str, Handler]] = [
            ("POST", "/api/v1/events", self.post_events),
            ("GET", "/api/v1/tenants/{tenant}/events", self.recent_events),
            ("GET", "/api/v1/tenants/{tenant}/sessions/{session}/events", self.session_events),
            ("GET", "/api/v1/tenants/{tenant}/stats", self.tenant_stats),
            ("GET", "/api/v1/tenants/{tenant}/config", self.get_config),
            ("PATCH", "/api/v1/tenants/{tenant}/config", self.patch_config),
            ("GET", "/api/v1/tenants/{tenant}/effects", self.list_effects),
            ("POST", "/api/v1/tenants/{tenant}/effects/{key}/{action:retry|discard}", self.change_effect),
            ("GET", "/api/v1/tenants/{tenant}/tier", self.get_tier),
            ("PUT", "/api/v1/tenants/{tenant}/tier", self.put_tier),
            ("PUT", "/api/v1/workspaces/{workspace}", self.put_workspace),
            ("GET", "/api/v1/sla", self.sla),
            ("GET", "/api/v1/jobs", self.list_jobs),
            ("POST", "/api/v1/jobs/{name}/trigger", self.trigger_job),
            ("GET", "/api/v1/audit", self.audit),
            ("GET", "/api/v2/summaries/bulk", self.summaries),
            ("GET", "/api/v1/schema", self.schema),
            ("GET", "/healthz", self.healthz),
            ("GET", "/metrics", self.metrics),
            ("POST", "/events", self.compat_post),
            ("GET", "/events/recent", self.compat_recent),
            ("POST", "/events/{lsn:[0-9]{1,19}}/respond", self.compat_respond),
            ("GET", "/events/filter-options", self.compat_filter_options),
            ("GET", "/api", self.index),
            ("GET", "/static/{name:[A-Za-z0-9_.-]+}", self.static),
            ("GET", "/", self.dashboard if config.dashboard else self.index),
        ]
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            (method, *_route(template), handler) for method, template, handler in routes
        ]
        self._static = _load_static()

    # -- ASGI ---------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        status, body, headers = 500, b"", []
        route = "unmatched"
        try:
            if scope["method"] == "OPTIONS":
                status, headers, route = 204, [], "preflight"
            else:
                data = await self._read_body(receive)
                request = Request(scope, data)
                handler, params, route = self._match(request)
                result = await handler(request, **params)
                if isinstance(result, Page):
                    status, body, headers = result.status, result.body, [(b"content-type", result.content_type), *result.headers]
                else:
                    status, body, headers = 200, encode_json_safely(result), [(b"content-type", b"application/json")]
        except HttpError as exc:
            status, headers = exc.status, [(b"content-type", b"application/json"), *exc.headers]
            body = _json.encode({"error": exc.error, "message": exc.message})
        except LanewayError as exc:
            err = http_error(exc)
            status, headers = err.status, [(b"content-type", b"application/json"), *err.headers]
            body = _json.encode({"error": err.error, "message": err.message})
        except Exception:
            log.exception("HTTP %s %s failed", scope.get("method"), scope.get("path"))
            status, headers = 500, [(b"content-type", b"application/json")]
            body = _json.encode({"error": "internal", "message": "internal server error"})
        self.requests[(route, status)] += 1
        headers += self._cors(scope)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _read_body(self, receive: Callable[..., Any]) -> bytes:
        # One deadline for the whole body: a client that trickles a byte at a
        # time must not hold a connection (and its buffers) for ever.
        try:
            with trio.fail_after(self.config.request_timeout_s):
                return await self._receive_body(receive)
        except trio.TooSlowError:
            raise HttpError(
                408, "request_timeout", f"the request body did not arrive within {self.config.request_timeout_s:g} s",
                [(b"connection", b"close")],
            ) from None

    async def _receive_body(self, receive: Callable[..., Any]) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise HttpError(400, "disconnected", "the client went away mid-request")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.config.max_body_bytes:
                raise HttpError(413, "body_too_large", f"request body over {self.config.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    def _match(self, request: Request) -> tuple[Handler, dict[str, str], str]:
        allowed: list[str] = []
        for method, pattern, template, handler in self._routes:
            m = pattern.fullmatch(request.path)
            if m is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            return handler, m.groupdict(), template
        if allowed:
            raise HttpError(405, "method_not_allowed", f"{request.method} not allowed here; use {', '.join(allowed)}")
        raise HttpError(404, "not_found", f"no route {request.path}; see GET /api")

    def _cors(self, scope: dict[str, Any]) -> list[tuple[bytes, bytes]]:
        origins = self.config.cors_origins
        if not origins and not self.anonymous.enabled:
            return []
        origin = next((v.decode() for k, v in scope.get("headers", []) if k == b"origin"), None)
        if origin is None:
            return []
        # With anonymous compat on, local dashboards (loopback origins) may
        # read too; `*` is never paired with it (GatewayConfig refuses that).
        if "*" not in origins and origin not in origins and not (self.anonymous.enabled and is_loopback_origin(origin)):
            return []
        return [
            (b"access-control-allow-origin", b"*" if "*" in origins else origin.encode()),
            (b"access-control-allow-methods", b"GET, POST, PATCH, OPTIONS"),
            (b"access-control-allow-headers", b"authorization, content-type, idempotency-key"),
            (b"vary", b"origin"),
        ]

    # -- auth -----------------------------------------------------------------------

    def principal(self, request: Request) -> Principal:
        auth = request.headers.get("authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else request.query.get("token")
        if not token:
            raise HttpError(401, "unauthorized", "no token: send 'Authorization: Bearer <jwt>' or ?token=")
        try:
            return self.auth.verify(token)
        except AuthError as exc:
            raise HttpError(401, "unauthorized", str(exc)) from None

    def require(self, request: Request, tenant: str, scope: str) -> Principal:
        principal = self.principal(request)
        if not principal.allows(tenant, scope):
            raise HttpError(403, "forbidden", f"the token does not grant {scope!r} on tenant {tenant!r}")
        return principal

    def compat_principal(self, request: Request) -> Principal | None:
        """A token's principal on the compat routes, or None for an anonymous
        request the policy allows (`AnonymousPolicy`: peer network, Origin,
        Host). A refused anonymous request gets a 401 or 403 saying why."""
        if "authorization" in request.headers or "token" in request.query:
            return self.principal(request)
        refusal = self.anonymous.refusal(request.client, request.headers.get("host"), request.headers.get("origin"))
        if refusal is None:
            return None
        if refusal.forbidden:
            raise HttpError(403, "forbidden", refusal.message)
        raise HttpError(
            401, "unauthorized", f"no token (send 'Authorization: Bearer <jwt>' or ?token=): {refusal.message}"
        )

    # -- handlers -------------------------------------------------------------------

    async def post_events(self, request: Request) -> Any:
        body = request.json()
        single = isinstance(body, dict)
        items = [body] if single else body
        if not isinstance(items, list) or not items:
            raise HttpError(422, "bad_request", "send one event object or a non-empty JSON array of them")
        key = request.headers.get("idempotency-key")
        principal = self.principal(request)
        if key is not None:
            async with self._idempotency.hold(key):
                return await self._post_events(body, items, single, principal, key)
        return await self._post_events(body, items, single, principal, None)

    async def _post_events(self, body: Any, items: list[Any], single: bool, principal: Principal, key: str | None) -> Any:
        derived_base = fingerprint = None
        if key is not None:
            derived_base, fingerprint = idempotency_base(key), request_fingerprint(body)
        prepared = []
        for index, item in enumerate(items):
            where = "" if single else f"item {index}: "
            if not isinstance(item, dict):
                raise HttpError(422, "bad_request", f"{where}each event must be a JSON object")
            unknown = set(item) - ITEM_FIELDS
            if unknown:
                raise HttpError(422, "bad_request", f"{where}unknown field(s) {sorted(unknown)}")
            missing = [f for f in ("tenant", "session", "type") if f not in item]
            if missing:
                raise HttpError(422, "bad_request", f"{where}missing field(s) {missing}")
            tenant = item["tenant"]
            try:
                validate_tenant(tenant)
            except InvalidKey as exc:
                raise HttpError(422, "invalid_key", f"{where}{exc}") from None
            if not principal.allows(tenant, "publish"):
                raise HttpError(403, "forbidden", f"the token does not grant 'publish' on tenant {tenant!r}")
            dedupe = item.get("dedupe_key")
            if derived_base is not None:
                if dedupe is not None:
                    raise HttpError(422, "bad_request", f"{where}send a dedupe_key or an Idempotency-Key, not both")
                dedupe = DerivedKey(f"{derived_base}{fingerprint}\x1e{index}")
            prepared.append(Item(**{**item, "dedupe_key": dedupe}))
        if derived_base is not None:
            # A reused key must come with the same request: look before
            # writing anything (the per-key hold keeps two requests with one
            # key from both looking first).
            for tenant in sorted({item.tenant for item in prepared}):
                found = await trio.to_thread.run_sync(self.engine.find_dedupe_key, tenant, derived_base)
                if found is not None and not found.startswith(f"{derived_base}{fingerprint}\x1e"):
                    raise HttpError(
                        409, "idempotency_key_reused",
                        f"Idempotency-Key {key!r} was already used with a different request; use a new key for a new request",
                    )
        receipts = await self.engine.asubmit_many(prepared)
        if single:
            return {"receipt": receipts[0]}
        return {"receipts": receipts}

    async def recent_events(self, request: Request, tenant: str) -> Any:
        self._check_tenant(tenant)
        self.require(request, tenant, "subscribe")
        limit = request.int_param("limit", 100, 1, 10_000)
        min_priority = request.int_param("min_priority", 0, 0, 3)
        types = request.query.get("types")
        session = request.query.get("session")
        if session is not None:
            self._check_session(session)
        events = await trio.to_thread.run_sync(
            lambda: self.engine.recent(
                tenant, session, limit=limit, min_priority=min_priority, types=types.split(",") if types else None
            )
        )
        return {"events": [e.to_dict() for e in events]}

    async def session_events(self, request: Request, tenant: str, session: str) -> Any:
        self._check_tenant(tenant)
        self._check_session(session)
        self.require(request, tenant, "subscribe")
        after = request.int_param("after_seq", 0, 0, 2**62)
        limit = request.int_param("limit", 1000, 1, 10_000)
        events = await trio.to_thread.run_sync(self.engine.events, tenant, session, after, limit)
        return {"events": [e.to_dict() for e in events], "next_after_seq": events[-1].seq if events else after}

    async def tenant_stats(self, request: Request, tenant: str) -> Any:
        self._check_tenant(tenant)
        self.require(request, tenant, "subscribe")
        return await trio.to_thread.run_sync(self.engine.statistics, tenant)

    async def get_config(self, request: Request, tenant: str) -> Any:
        self._check_tenant(tenant)
        self.require(request, tenant, "admin")
        return self.engine.tenant_config(tenant)

    async def patch_config(self, request: Request, tenant: str) -> Any:
        self._check_tenant(tenant)
        principal = self.require(request, tenant, "admin")
        changes = request.json()
        if not isinstance(changes, dict) or not changes:
            raise HttpError(422, "bad_request", "send a JSON object of settings to change")
        reset = changes.pop("reset", False)
        if not isinstance(reset, bool):
            raise HttpError(400, "bad_request", f"reset must be true or false, got {reset!r}")
        unknown = sorted(set(changes) - _TENANT_SETTINGS)
        if unknown:
            raise HttpError(400, "unknown_setting", f"unknown setting(s) {unknown}; known: {sorted(_TENANT_SETTINGS)}")
        new = await trio.to_thread.run_sync(lambda: self.engine.configure(tenant, actor=principal.subject, reset=reset, **changes))
        return {"tenant": tenant, "config": new}

    async def list_effects(self, request: Request, tenant: str) -> Any:
        self._check_tenant(tenant)
        self.require(request, tenant, "subscribe")
        limit = request.int_param("limit", 100, 1, 10_000)
        session = request.query.get("session")
        if session is not None:
            self._check_session(session)
        state = request.query.get("state")
        records = await trio.to_thread.run_sync(lambda: self.engine.effects(tenant, session, state, limit))
        return {"effects": [r.to_dict() for r in records], "counts": self.engine.effect_counts()}

    async def change_effect(self, request: Request, tenant: str, key: str, action: str) -> Any:
        self._check_tenant(tenant)
        principal = self.require(request, tenant, "admin")
        if not key.startswith(f"{tenant}:"):
            raise HttpError(404, "not_found", f"effect {key!r} is not one of tenant {tenant!r}")
        change = self.engine.retry_effect if action == "retry" else self.engine.discard_effect
        record = await trio.to_thread.run_sync(lambda: change(key, actor=principal.subject))
        return {"effect": record.to_dict()}

    async def get_tier(self, request: Request, tenant: str) -> Any:
        self._check_tenant(tenant)
        self.require(request, tenant, "subscribe")
        return {"tenant": tenant, "tier": self.engine.tier_of(tenant)}

    async def put_tier(self, request: Request, tenant: str) -> Any:
        self._check_tenant(tenant)
        principal = self.require(request, tenant, "admin")
        body = request.json()
        if not isinstance(body, dict) or "tier" not in body:
            raise HttpError(422, "bad_request", 'send {"tier": "high" | "medium" | "low" | null, "why": "..."}')
        why = body.get("why", "")
        if not isinstance(why, str):
            raise HttpError(422, "bad_request", "why must be a string")
        tier = await trio.to_thread.run_sync(
            lambda: self.engine.set_tier(tenant, body["tier"], why=why, actor=principal.subject)
        )
        return {"tenant": tenant, "tier": tier}

    async def put_workspace(self, request: Request, workspace: str) -> Any:
        principal = self._require_admin_everywhere(request, "workspaces")
        body = request.json()
        tenants = body.get("tenants") if isinstance(body, dict) else None
        if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
            raise HttpError(422, "bad_request", 'send {"tenants": ["a", "b"], "why": "..."}')
        moves = await trio.to_thread.run_sync(
            lambda: self.engine.set_workspace_members(workspace, tenants, why=str(body.get("why", "")), actor=principal.subject)
        )
        return {"workspace": workspace, "tenants": sorted(set(tenants)), "changes": [msgspec.to_builtins(m) for m in moves]}

    def _require_admin_everywhere(self, request: Request, what: str) -> Principal:
        principal = self.principal(request)
        if not ("*" in principal.tenants and principal.allows("*", "admin")):
            raise HttpError(403, "forbidden", f"{what} span tenants: this needs admin on '*'")
        return principal

    async def list_jobs(self, request: Request) -> Any:
        self._require_admin_everywhere(request, "jobs")
        limit = request.int_param("runs", 10, 0, 1000)
        jobs = self.engine.jobs()
        runs = await trio.to_thread.run_sync(lambda: {j.name: self.engine.job_runs(j.name, limit) for j in jobs} if limit else {})
        return {"jobs": jobs, "runs": runs}

    async def trigger_job(self, request: Request, name: str) -> Any:
        principal = self._require_admin_everywhere(request, "jobs")
        triggered = self.engine.trigger(name)
        log.info("job %s triggered by %s: %s", name, principal.subject, "started" if triggered else "already running")
        return {"job": name, "triggered": triggered}  # False: a run of it is going on

    async def sla(self, request: Request) -> Any:
        # Aggregates, no tenant's data: any token that may read every tenant
        # (the dashboard's subscribe token) may see them.
        principal = self.principal(request)
        if not ("*" in principal.tenants and principal.allows("*", "subscribe")):
            raise HttpError(403, "forbidden", "SLA figures span tenants: this needs subscribe (or admin) on '*'")
        stats = await trio.to_thread.run_sync(self.engine.statistics)
        return {"sla": stats.sla or [], "priority_inversions": stats.priority_inversions or 0}

    async def audit(self, request: Request) -> Any:
        principal = self.principal(request)
        tenant = request.query.get("tenant")
        if tenant is not None:
            self._check_tenant(tenant)
            if not principal.allows(tenant, "admin"):
                raise HttpError(403, "forbidden", f"the token does not grant 'admin' on tenant {tenant!r}")
        elif not principal.allows("*", "admin") or "*" not in principal.tenants:
            raise HttpError(403, "forbidden", "the whole audit log needs admin on '*'; pass ?tenant=")
        limit = request.int_param("limit", 100, 1, 10_000)
        records = await trio.to_thread.run_sync(lambda: self.engine.audit_log(limit, tenant))
        return {"records": records}

    async def summaries(self, request: Request) -> Any:
        principal = self.principal(request)
        tenant = request.query.get("tenant")
        sessions = request.query.get("sessions")
        if tenant is not None:
            self._check_tenant(tenant)
            if not principal.allows(tenant, "subscribe"):
                raise HttpError(403, "forbidden", f"the token does not grant 'subscribe' on tenant {tenant!r}")
            names = sessions.split(",") if sessions else None
            for name in names or ():
                self._check_session(name)
            return await trio.to_thread.run_sync(self.engine.summaries, tenant, names)
        if sessions:
            raise HttpError(422, "bad_request", "sessions= needs tenant=")
        result = await trio.to_thread.run_sync(self.engine.summaries)
        visible = [t for t in result.tenants if principal.allows(t.tenant, "subscribe")]
        names = {t.tenant for t in visible}
        return {"sessions": [s for s in result.sessions if s.tenant in names], "tenants": visible}

    async def schema(self, request: Request) -> Any:
        return wire_schema()

    def health(self) -> dict[str, str]:
        """Each component's problem, if it has one (empty: all is well).
        The gateway registers its own components in `self.checks`."""
        problems = {}
        if self.engine.closed:
            problems["engine"] = "the engine is closed"
        elif (storage := self.engine.storage_problem) is not None:
            problems["storage"] = storage
        for name, check in self.checks.items():
            problem = check()
            if problem:
                problems[name] = problem
        return problems

    async def healthz(self, request: Request) -> Any:
        problems = self.health()
        if problems:
            body = _json.encode({"status": "degraded", "problems": problems})
            return Page(body, b"application/json", status=503)
        return {"status": "ok"}

    async def metrics(self, request: Request) -> Any:
        text = await trio.to_thread.run_sync(render_metrics, self.engine, self.hub, self.requests, self.health())
        return Page(text.encode(), b"text/plain; version=0.0.4; charset=utf-8")

    async def index(self, request: Request) -> Any:
        protocols = ", ".join(self.config.protocols)
        return {
            "name": "laneway",
            "websocket": {"/ws": f"laneway protocol (subprotocols {protocols})", "/stream": "HookEvent compatibility stream"},
            "http": [f"{method} {template}" for method, _, template, _ in self._routes],
            "dashboard": "/" if self.config.dashboard else None,
            "max_subscriptions": self.config.max_subscriptions,
            "docs": "docs/protocol.md",
        }

    async def dashboard(self, request: Request) -> Page:
        return self._static_page("index.html")

    async def static(self, request: Request, name: str) -> Page:
        if not self.config.dashboard:
            raise HttpError(404, "not_found", "the dashboard is turned off (dashboard = false)")
        return self._static_page(name)

    def _static_page(self, name: str) -> Page:
        body = self._static.get(name)
        if body is None:
            raise HttpError(404, "not_found", f"no static file {name!r}")
        content_type = _CONTENT_TYPES[name.rsplit(".", 1)[-1]]
        # The page talks to this server only: no inline code, no other
        # origins, so an event payload that smuggles markup cannot run.
        headers = [
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", _CSP),
        ]
        return Page(body, content_type, headers=headers)

    # -- HookEvent compatibility ------------------------------------------------

    async def compat_post(self, request: Request) -> Any:
        principal = self.compat_principal(request)
        try:
            tenant, session, type_, payload, attrs = from_hook_event(request.json())
        except InvalidEvent as exc:
            raise HttpError(400, "bad_request", str(exc)) from None
        if principal is not None and not principal.allows(tenant, "publish"):
            raise HttpError(403, "forbidden", f"the token does not grant 'publish' on tenant {tenant!r}")
        receipt = await self.engine.asubmit(tenant, session, type_, payload, attrs=attrs)
        events = await trio.to_thread.run_sync(self.engine.events, tenant, session, receipt.seq - 1, 1)
        return hook_event(events[0])

    async def compat_recent(self, request: Request) -> Any:
        principal = self.compat_principal(request)
        limit = request.int_param("limit", self.config.compat_recent_events, 1, 10_000)
        events, _ = await trio.to_thread.run_sync(recent_across_tenants, self.engine, limit)
        shown = [hook_event(e) for e in events if principal is None or principal.allows(e.tenant, "subscribe")]
        return await trio.to_thread.run_sync(annotate, self.engine, shown)

    async def compat_respond(self, request: Request, lsn: str) -> Any:
        """The observability client's answer to a question (docs/protocol.md)."""
        principal = self.compat_principal(request)
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "bad_request", "send a JSON object: {response | permission | choice, ...}")
        question = await trio.to_thread.run_sync(self.engine.event_at, int(lsn))
        if question is None or (principal is not None and not principal.allows(question.tenant, "subscribe")):
            raise HttpError(404, "not_found", f"no event {lsn}")
        if not isinstance((question.attrs or {}).get("humanInTheLoop"), dict):
            raise HttpError(400, "not_a_question", f"event {lsn} asks no question (it has no humanInTheLoop)")
        if principal is not None and not principal.allows(question.tenant, "publish"):
            raise HttpError(403, "forbidden", f"the token does not grant 'publish' on tenant {question.tenant!r}")
        answer = {k: body[k] for k in ANSWER_FIELDS if k in body}
        if not answer:
            raise HttpError(400, "bad_request", f"the answer needs one of {list(ANSWER_FIELDS[:6])}")
        receipt = await self.engine.asubmit(
            question.tenant, question.session, RESPONSE_TYPE, answer,
            dedupe_key=response_key(question.lsn), attrs={"respondsTo": question.lsn}, source="user",
        )
        (updated,) = await trio.to_thread.run_sync(annotate, self.engine, [hook_event(question)])
        if not receipt.duplicate:
            self.hub.compat_update(updated)
        return updated

    async def compat_filter_options(self, request: Request) -> Any:
        principal = self.compat_principal(request)
        result = await trio.to_thread.run_sync(self.engine.summaries)
        tenants = [t for t in result.tenants if principal is None or principal.allows(t.tenant, "subscribe")]
        names = {t.tenant for t in tenants}
        sessions = sorted((s for s in result.sessions if s.tenant in names), key=lambda s: s.last_ts, reverse=True)[:300]
        # Names the client sent that had to be mapped are shown as it sent them.
        originals = await trio.to_thread.run_sync(
            original_names, self.engine, [(t, None) for t in names] + [(s.tenant, s.session) for s in sessions]
        )
        return {
            "source_apps": sorted({originals.get((t, None), t) for t in names}),
            "session_ids": [originals.get((s.tenant, s.session), s.session) for s in sessions],
            "hook_event_types": sorted({k for t in tenants for k in t.by_type}),
        }

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def _check_tenant(tenant: str) -> None:
        try:
            validate_tenant(tenant)
        except InvalidKey as exc:
            raise HttpError(422, "invalid_key", str(exc)) from None

    @staticmethod
    def _check_session(session: str) -> None:
        try:
            validate_session(session)
        except InvalidKey as exc:
            raise HttpError(422, "invalid_key", str(exc)) from None
