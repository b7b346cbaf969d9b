"""One error type for every endpoint, rendered in the calling dialect's error body."""

from __future__ import annotations

import json
from typing import Optional

from aiohttp import web

# kind -> (HTTP status, OpenAI error type, Anthropic error type)
_KINDS = {
    "invalid_request": (400, "invalid_request_error", "invalid_request_error"),
    "authentication": (401, "authentication_error", "authentication_error"),
    "not_found": (404, "not_found_error", "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error", "invalid_request_error"),
    "too_large": (413, "invalid_request_error", "request_too_large"),
    "overloaded": (503, "server_overloaded", "overloaded_error"),
    "internal": (500, "server_error", "api_error"),
}


class ApiError(Exception):
    """A client-visible error: ``kind`` picks the status; ``param`` names the offending field."""

    def __init__(self, kind: str, message: str, *, param: Optional[str] = None,
                 code: Optional[str] = None, retry_after: Optional[int] = None):
        super().__init__(message)
        if kind not in _KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        self.kind = kind
        self.message = message
        self.param = param
        self.code = code
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return _KINDS[self.kind][0]


def bad_field(field: str, message: str) -> ApiError:
    return ApiError("invalid_request", f"{field}: {message}", param=field)


def dialect_for_path(path: str) -> str:
    """Which dialect's error shape a path answers in: "anthropic", "ollama" or "openai"."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/api/"):
        return "ollama"
    return "openai"


def error_body(dialect: str, err: ApiError) -> dict:
    _, oai_type, anth_type = _KINDS[err.kind]
    if dialect == "anthropic":
        return {"type": "error", "error": {"type": anth_type, "message": err.message}}
    if dialect == "ollama":
        return {"error": err.message}
    return {"error": {"message": err.message, "type": oai_type, "param": err.param,
                      "code": err.code}}


def error_response(dialect: str, err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    return web.Response(status=err.status, text=json.dumps(error_body(dialect, err)),
                        content_type="application/json", headers=headers)
