"""Who may talk to the server: Host and Origin checks, body media types, CORS answers.

A local server is reachable from every web page the user opens. Three checks keep pages
from driving it: the ``Host`` header must name this server (defeats DNS rebinding), a
browser's ``Origin`` must be the server's own page, a loopback origin or one the user
allowed (``--cors-origin``), and JSON bodies must say so (``text/plain`` and form bodies
are what a page can send without a CORS preflight).
"""

from __future__ import annotations

import ipaddress
from typing import Optional
from urllib.parse import urlsplit

from aiohttp import web

from .api.errors import ApiError
from .config import ServeConfig

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_CORS_HEADERS = ("Authorization, Content-Type, X-Api-Key, Anthropic-Version, Anthropic-Beta, "
                 "OpenAI-Organization, OpenAI-Project, X-Stainless-Lang, X-Stainless-Retry-Count")


def _split_host(value: str) -> str:
    """The host name of a ``Host`` header or URL netloc, lower-cased, without port or brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value[1:]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """The checks of one server configuration (see the module docstring)."""

    def __init__(self, config: ServeConfig):
        self._any_host = "*" in config.allowed_hosts
        self._hosts = {_split_host(h) for h in config.allowed_hosts if h != "*"}
        bound = _split_host(config.host)
        if bound not in ("", "0.0.0.0", "::"):
            self._hosts.add(bound)
        self._any_origin = "*" in config.cors_origins
        self._origins = {o for o in config.cors_origins if o != "*"}

    def host_allowed(self, host_header: Optional[str]) -> bool:
        if self._any_host:
            return True
        if not host_header:
            return False
        name = _split_host(host_header)
        return _is_loopback(name) or name in self._hosts

    def origin_allowed(self, origin: str, host_header: Optional[str]) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if self._any_origin or origin in self._origins:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        if host_header and parts.netloc == host_header.strip().lower():
            return True  # the server's own page
        return _is_loopback(_split_host(parts.netloc))

    def check(self, request: web.Request) -> Optional[str]:
        """Raise :class:`ApiError` for a request that must not be served; returns the allowed
        ``Origin`` (to echo in CORS headers), or None for a request without one."""
        host = request.headers.get("Host")
        if not self.host_allowed(host):
            raise ApiError("forbidden", f"Host {host!r} is not served here (a guard against DNS "
                                        f"rebinding; start the server with --allowed-host to add it)")
        origin = request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin, host):   # "null" (sandboxed pages) included
            raise ApiError("forbidden", f"Origin {origin!r} may not call this server (start it with "
                                        f"--cors-origin to allow it)")
        if request.method in ("POST", "PUT", "PATCH") and request.can_read_body:
            media = request.content_type.lower()
            if media.startswith(("text/plain", "multipart/form-data")) or (
                    media == "application/x-www-form-urlencoded" and origin is not None):
                raise ApiError("unsupported_media_type",
                               f"Content-Type {media!r}: request bodies must be application/json")
        return origin

    @staticmethod
    def preflight(request: web.Request, origin: str) -> web.Response:
        """The answer to a CORS preflight (``OPTIONS``) from an allowed origin."""
        asked = request.headers.get("Access-Control-Request-Headers")
        return web.Response(status=204, headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
            "Access-Control-Allow-Headers": asked or _CORS_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin"})

    @staticmethod
    def add_cors(response: web.StreamResponse, origin: Optional[str]) -> None:
        """Let an allowed origin read ``response`` (called as the response is prepared)."""
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
