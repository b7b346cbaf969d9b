"""One error type for every endpoint, rendered in the calling dialect's error body."""

from __future__ import annotations

import json
import re
from typing import Optional

from aiohttp import web

# kind -> (HTTP status, OpenAI error type, Anthropic error type)
_KINDS = {
    "invalid_request": (400, "invalid_request_error", "invalid_request_error"),
    "authentication": (401, "authentication_error", "authentication_error"),
    "forbidden": (403, "permission_error", "permission_error"),
    "not_found": (404, "not_found_error", "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error", "invalid_request_error"),
    "too_large": (413, "invalid_request_error", "request_too_large"),
    "unsupported_media_type": (415, "invalid_request_error", "invalid_request_error"),
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

    def status_for(self, dialect: str) -> int:
        """The HTTP status in ``dialect``: Anthropic's clients expect 529 for an overloaded server."""
        if self.kind == "overloaded" and dialect == "anthropic":
            return 529
        return self.status


_PATH = re.compile(r"(?<![\w:/.])(?:[A-Za-z]:)?(?:[\\/][\w.+~@-]+){2,}[\\/]?")


def without_paths(message: str) -> str:
    """``message`` with file-system paths cut to their last part (errors never show the server's
    directories)."""
    return _PATH.sub(lambda m: "…/" + m.group(0).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1],
                     message)


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
    message = without_paths(err.message)
    if dialect == "anthropic":
        return {"type": "error", "error": {"type": anth_type, "message": message}}
    if dialect == "ollama":
        return {"error": message}
    return {"error": {"message": message, "type": oai_type, "param": err.param,
                      "code": err.code}}


def error_response(dialect: str, err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    return web.Response(status=err.status_for(dialect), text=json.dumps(error_body(dialect, err)),
                        content_type="application/json", headers=headers)
