"""The aiohttp application of ``alloy serve`` and the ways to run it.

``create_app(served, config)`` builds the app (OpenAI, Anthropic and Ollama routes,
/health, /metrics); ``serve(config)`` runs it in the foreground; ``ServerThread`` runs it
on a background thread (tests, ``alloy run``).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import time
from typing import Optional

from aiohttp import web

from . import metrics as metrics_mod
from .api.common import (BOOKMARK, LIMITS_KEY, STREAM_KEY, BodyLimits, Served, bookmark_from, json_response,
                         send_stream_error)
from .api.errors import ApiError, dialect_for_path, error_body, error_response
from .api.openapi import routes as openapi_routes
from .config import ServeConfig
from .engine.grammar import GrammarFactory
from .engine.scheduler import Engine, PromptLookup
from .web import routes as web_routes
from .guards import RequestGuard

log = logging.getLogger("alloy.serve")

DEFAULT_CTX_CAP = 4096
_OPEN_PATHS = {"/", "/static/chat.js", "/static/chat.css", "/health", "/api/version"}  # the page asks for the key
ORIGIN_KEY = web.RequestKey("alloy_origin", object)


def load_served(config: ServeConfig, model=None, tokenizer=None) -> Served:
    """Load ``config.model`` (unless given) and wrap it with an engine."""
    if model is None or tokenizer is None:
        from .generate import load

        model, tokenizer = load(config.model, engine=config.engine, device=config.device, kv=config.kv_type)
    cfg = model.config
    ctx = config.ctx or min(int(cfg.n_ctx_train or DEFAULT_CTX_CAP), DEFAULT_CTX_CAP)
    speculation = PromptLookup(config.draft_max) if config.spec == "pld" else None
    engine = Engine(model, tokenizer, ctx=ctx, max_queue=config.max_queue, max_batch=config.parallel,
                    speculation=speculation, max_bookmarks=config.bookmarks,
                    kv_budget=None if config.kv_budget_mb is None else config.kv_budget_mb << 20)
    size, quant = 0, ""
    try:
        from .gguf.resolve import quant_from_filename, resolve_model

        path = config.model if os.path.isfile(config.model) else resolve_model(config.model).path
        size, quant = os.path.getsize(path), quant_from_filename(os.path.basename(path)) or ""
    except Exception:  # size/quantization are informational (api/tags, api/show)
        pass
    grammars = GrammarFactory(tokenizer, cfg.n_vocab, sorted(engine.eos_ids))
    return Served(engine=engine, model=model, tokenizer=tokenizer, name=config.model, ctx=ctx,
                  default_max_tokens=config.default_max_tokens, grammars=grammars,
                  size_bytes=size, quantization=quant)


def create_app(served: Served, config: ServeConfig) -> web.Application:
    from .api.anthropic import AnthropicApi
    from .api.ollama import OllamaApi
    from .api.openai import OpenAIApi

    http_metrics = metrics_mod.HttpMetrics()

    guard = RequestGuard(config)

    @web.middleware
    async def middleware(request: web.Request, handler):
        t0 = time.perf_counter()
        dialect = dialect_for_path(request.path)
        status = 500
        try:
            origin = guard.check(request)
            request[ORIGIN_KEY] = origin
            if request.method == "OPTIONS" and origin is not None:
                status = 204
                return guard.preflight(request, origin)
            if request.content_length is not None and request.content_length > config.max_body_bytes:
                raise ApiError("too_large", f"request body too large: {request.content_length} bytes, "
                                            f"the limit is {config.max_body_bytes} (--max-body)")
            if config.api_key and request.path not in _OPEN_PATHS:
                _check_key(request, config.api_key)
            BOOKMARK.set(bookmark_from(request))
            resp = await handler(request)
            status = resp.status
            return resp
        except ApiError as err:
            status = err.status_for(dialect)
            if request.get(STREAM_KEY) is not None:
                await send_stream_error(request[STREAM_KEY], dialect, error_body(dialect, err))
                return request[STREAM_KEY]
            return error_response(dialect, err)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            status = exc.status
            kind = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
                exc.status, "invalid_request")
            msg = f"{request.method} {request.path}: {exc.reason}"
            if exc.status == 413:
                msg = f"request body too large: the limit is {config.max_body_bytes} bytes (--max-body)"
            return error_response(dialect, ApiError(kind, msg))
        except (asyncio.CancelledError, ConnectionResetError):
            status = 499
            raise
        except Exception as exc:
            log.exception("error answering %s %s", request.method, request.path)
            err = ApiError("internal", f"internal error: {exc}")
            started = request.get(STREAM_KEY)
            if started is None:
                return error_response(dialect, err)
            await send_stream_error(started, dialect, error_body(dialect, err))
            return started
        finally:
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            http_metrics.observe(request.method, name, status, time.perf_counter() - t0)

    async def allow_origin(request: web.Request, response: web.StreamResponse) -> None:
        guard.add_cors(response, request.get(ORIGIN_KEY))

    app = web.Application(middlewares=[middleware], client_max_size=config.max_body_bytes)
    app[LIMITS_KEY] = BodyLimits(config.max_body_bytes, config.max_json_depth)
    app.on_response_prepare.append(allow_origin)

    async def health(request):
        return json_response({"status": "ok", "model": served.name,
                              "queue": {"waiting": served.engine.stats.waiting,
                                        "running": served.engine.stats.running}})

    async def metrics(request):
        return web.Response(text=metrics_mod.render(http_metrics, served.engine.stats, served.name),
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})

    app.add_routes(web_routes())  # the chat page at / (HTML; "Alloy is running" in its text)
    app.router.add_get("/health", health)
    app.router.add_get("/metrics", metrics)
    for api in (OpenAIApi(served), AnthropicApi(served), OllamaApi(served)):
        app.add_routes(api.routes())
    app.add_routes(openapi_routes(served))

    async def on_startup(_app):
        served.engine.start()

    async def on_cleanup(_app):
        await asyncio.get_running_loop().run_in_executor(None, served.engine.stop)

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def _check_key(request: web.Request, key: str) -> None:
    given = request.headers.get("x-api-key")
    auth = request.headers.get("Authorization", "")
    if given is None and auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    # header bytes that are not UTF-8 arrive as surrogates: compare them byte for byte, never fail
    if given is None or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                key.encode("utf-8", "surrogateescape")):
        raise ApiError("authentication", "missing or invalid API key "
                                         "(send 'Authorization: Bearer KEY' or 'x-api-key: KEY')")


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # the bound port
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


def serve(config: ServeConfig, served: Optional[Served] = None,
          on_ready=None) -> None:
    """Run the server in the foreground until interrupted."""
    served = served or load_served(config)
    app = create_app(served, config)

    async def main():
        runner, port = await _start(app, config.host, config.port)
        if on_ready is not None:
            on_ready(config.host, port)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


class ServerThread:
    """The server on a background thread: ``with ServerThread(cfg, served) as s: s.url``."""

    def __init__(self, config: ServeConfig, served: Optional[Served] = None):
        self.config = config
        self.served = served or load_served(config)
        self.port: Optional[int] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread = threading.Thread(target=self._main, name="alloy-server", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=120)
        if self._error is not None:
            raise self._error
        if self.port is None:
            raise RuntimeError("the server did not start within 120 s")
        return self

    def _main(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            app = create_app(self.served, self.config)
            self._runner, self.port = self._loop.run_until_complete(
                _start(app, self.config.host, self.config.port))
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=60)
            self._thread = None

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
