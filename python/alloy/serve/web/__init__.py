"""The browser chat page of ``alloy serve``: ``GET /`` and its static assets.

Plain HTML, CSS and one script, read from this package (no build step, nothing fetched from
elsewhere). The page talks to the server's own OpenAI routes (``/v1/models``,
``/v1/chat/completions`` streamed as SSE).
"""

from __future__ import annotations

import hashlib
from importlib import resources

from aiohttp import web

# URL path -> (file in this package, content type)
_ASSETS = {
    "/": ("index.html", "text/html"),
    "/static/chat.js": ("chat.js", "text/javascript"),
    "/static/chat.css": ("chat.css", "text/css"),
}

# Everything the page needs comes from this server; inline scripts and other origins are refused.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _handler(filename: str, content_type: str):
    body = resources.files(__package__).joinpath(filename).read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
    headers = {"Cache-Control": "no-cache", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if content_type == "text/html":
        headers["Content-Security-Policy"] = _CSP

    async def handle(request: web.Request) -> web.Response:
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type=content_type, charset="utf-8",
                            headers=headers)
    return handle


def routes() -> list[web.RouteDef]:
    """GET (and HEAD) routes for the chat page and its assets."""
    return [web.get(path, _handler(name, ctype)) for path, (name, ctype) in _ASSETS.items()]
