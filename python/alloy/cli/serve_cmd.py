"""``alloy serve``: the local LLM server (OpenAI, Anthropic and Ollama dialects).

The port defaults to 11434; ``--port`` or the ``ALLOY_PORT`` environment variable moves it.
"""
from __future__ import annotations

import click

__all__ = ["serve_cmd", "server_options", "config_from"]


engine_option = click.option(
    "--engine", type=click.Choice(["alloy", "reference"]), default="alloy", show_default=True,
    help="alloy: compiled Alloy kernels, weights kept quantized; reference: the numpy oracle.")


device_option = click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
    help="Where the compiled engine runs (cuda: a CUDA GPU, with torch built for it).")


def server_options(f):
    """Options shared by ``serve`` and ``launch``."""
    from alloy.serve.config import DEFAULT_MAX_TOKENS, DEFAULT_MODEL, MAX_BODY_BYTES

    for opt in reversed([
        click.option("-m", "--model", "model", default=DEFAULT_MODEL, show_default=True,
                     help="Model: an Ollama tag, a Hugging Face GGUF reference or a .gguf path."),
        click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind."),
        click.option("--port", type=click.IntRange(0, 65535), default=None,
                     help="Port (default 11434, or $ALLOY_PORT)."),
        click.option("--api-key", default=None,
                     help="Require this key (Authorization: Bearer / x-api-key)."),
        click.option("--ctx", type=click.IntRange(16), default=None,
                     help="Context window in tokens (default: min(model's, 4096))."),
        click.option("-np", "--parallel", type=click.IntRange(1, 64), default=4, show_default=True,
                     help="Requests decoded at once (continuous batching, one KV cache each)."),
        click.option("--bookmarks", type=click.IntRange(0, 64), default=4, show_default=True,
                     help="Prompt prefixes kept warm for requests naming one (header X-Alloy-Bookmark)."),
        click.option("--kv-budget", "kv_budget_mb", type=click.IntRange(1), default=None,
                     help="MiB all KV caches may take; cold prefixes are dropped to stay under it (default: no bound)."),
        click.option("--kv-type", type=click.Choice(["f16", "f32", "q8_0"]), default="f16", show_default=True,
                     help="What the KV cache stores (q8_0: int8 codes, a scale per 32 values)."),
        click.option("--spec", type=click.Choice(["none", "pld"]), default="none", show_default=True,
                     help="Speculative decoding: pld drafts from the request's own text (greedy requests)."),
        click.option("--draft-max", type=click.IntRange(1, 15), default=8, show_default=True,
                     help="Tokens drafted a step with --spec."),
        click.option("--max-queue", type=click.IntRange(0), default=16, show_default=True,
                     help="Requests allowed to wait for a slot; beyond it the server answers 503."),
        click.option("--max-tokens", "default_max_tokens", type=click.IntRange(1), default=DEFAULT_MAX_TOKENS,
                     show_default=True, help="Generation cap per choice for requests that set none."),
        click.option("--max-body", "max_body_bytes", type=click.IntRange(1024), default=MAX_BODY_BYTES,
                     show_default=True, help="Largest request body in bytes (larger: 413)."),
        click.option("--allowed-host", "allowed_hosts", multiple=True,
                     help="Host header name to accept besides loopback names and the bound address "
                          "(repeatable; '*' accepts any)."),
        click.option("--cors-origin", "cors_origins", multiple=True,
                     help="Browser origin allowed to call the API, e.g. https://app.example "
                          "(repeatable; '*' allows any)."),
        engine_option,
        device_option,
    ]):
        f = opt(f)
    return f


def config_from(model, host, port, api_key, ctx, max_queue, default_max_tokens, engine="alloy", device="cpu",
                parallel=4, max_body_bytes=None, allowed_hosts=(), cors_origins=(), spec="none", draft_max=8, kv_type="f16", bookmarks=4, kv_budget_mb=None):
    from alloy.serve.config import MAX_BODY_BYTES, ServeConfig, default_port

    try:
        port = default_port() if port is None else port
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ALLOY_PORT") from None
    return ServeConfig(model=model, host=host, port=port, api_key=api_key, ctx=ctx, parallel=parallel, kv_type=kv_type, bookmarks=bookmarks, kv_budget_mb=kv_budget_mb, spec=spec, draft_max=draft_max,
                       max_queue=max_queue, default_max_tokens=default_max_tokens, engine=engine, device=device,
                       max_body_bytes=max_body_bytes or MAX_BODY_BYTES, allowed_hosts=tuple(allowed_hosts),
                       cors_origins=tuple(cors_origins))


def load_or_fail(config):
    """The served model of a command (its process's thread pools sized for the engine first)."""
    from alloy.serve.gguf.resolve import ModelNotFoundError
    from alloy.serve.server import load_served
    from alloy.serve.threads import share_cores

    share_cores(config.engine)
    try:
        return load_served(config)
    except (ModelNotFoundError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command("serve")
@server_options
def serve_cmd(**kw):
    """Serve a model over HTTP, drop-in for the OpenAI, Anthropic and Ollama clients."""
    from alloy.serve.server import serve

    config = config_from(**kw)
    click.echo(f"loading {config.model} ...", err=True)
    served = load_or_fail(config)

    def ready(host, port):
        click.echo(f"serving {served.name} (ctx {served.ctx}, {config.engine} engine on {config.device}) on "
                   f"http://{host}:{port}  "
                   f"[OpenAI /v1, Anthropic /v1/messages, Ollama /api]", err=True)

    try:
        serve(config, served, on_ready=ready)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {config.host}:{config.port}: "
                                   f"{exc.strerror or exc}") from None
