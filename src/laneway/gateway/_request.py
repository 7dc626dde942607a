"""HTTP plumbing the handlers share: the request, its errors, non-JSON pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import msgspec

from ..core import MAX_PAYLOAD_DEPTH, LanewayError
from ._errors import wire_error

__all__ = ["HttpError", "http_error", "Request", "Page"]

_decode = msgspec.json.Decoder()


class HttpError(LanewayError):
    def __init__(self, status: int, error: str, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or []


def http_error(exc: LanewayError) -> HttpError:
    code, status = wire_error(exc)
    headers = [(b"retry-after", b"1")] if status in (429, 503) else None
    return HttpError(status, code, str(exc), headers)


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "client")

    def __init__(self, scope: dict[str, Any], body: bytes) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query = {k: v[-1] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        self.headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        self.body = body
        client = scope.get("client")
        self.client = client[0] if client else None

    def json(self) -> Any:
        if not self.body:
            raise HttpError(400, "bad_json", "the request body is empty; send JSON")
        try:
            return _decode.decode(self.body)
        except msgspec.DecodeError as exc:
            raise HttpError(400, "bad_json", f"the request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise HttpError(400, "payload_too_deep", f"the request body nests deeper than {MAX_PAYLOAD_DEPTH} levels") from None

    def int_param(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(400, "bad_parameter", f"{name} must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise HttpError(400, "bad_parameter", f"{name} must be {low}-{high}, got {value}")
        return value


class Page(msgspec.Struct, frozen=True):
    """A non-JSON response (the dashboard's files, metrics text)."""

    body: bytes
    content_type: bytes
    status: int = 200
    headers: list[tuple[bytes, bytes]] = []
