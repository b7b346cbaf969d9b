"""``alloy launch claude``: run Claude Code against the local server.

Starts ``alloy serve`` in this process (or reuses one already answering on the port) and
runs ``claude`` with ``ANTHROPIC_BASE_URL`` pointing at it and the model set for both the
main and the small/fast slots. Arguments after ``--`` go to ``claude``.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import click

from alloy.cli.serve_cmd import config_from, load_or_fail, server_options

__all__ = ["launch_cmd", "claude_env"]

CLAUDE_PROMPT_TOKENS = 22000  # system prompt + tool definitions of Claude Code 2.1
APPS = {"claude": ("claude", "Claude Code is not installed; install it with "
                             "'npm install -g @anthropic-ai/claude-code'")}


def claude_env(base_url: str, model: str, api_key: str | None) -> dict[str, str]:
    """The environment that points Claude Code at an Alloy server."""
    return {"ANTHROPIC_BASE_URL": base_url, "ANTHROPIC_AUTH_TOKEN": api_key or "alloy",
            "ANTHROPIC_MODEL": model, "ANTHROPIC_SMALL_FAST_MODEL": model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model, "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            # request only what the server implements: no experimental betas (context
            # management), no extended thinking or effort levels for models that lack them
            "CLAUDE_CODE_DISABLE_EXPERIMENTAL_BETAS": "1", "CLAUDE_CODE_DISABLE_THINKING": "1",
            "MAX_THINKING_TOKENS": "0"}


def _running(url: str, model: str) -> bool:
    import httpx

    try:
        r = httpx.get(url + "/health", timeout=1.0)
        return r.status_code == 200 and r.json().get("model") == model
    except (httpx.HTTPError, ValueError):
        return False


@click.command("launch", context_settings={"ignore_unknown_options": True})
@click.argument("app", type=click.Choice(sorted(APPS)))
@server_options
@click.argument("app_args", nargs=-1, type=click.UNPROCESSED)
def launch_cmd(app, app_args, **kw):
    """Start APP (claude) wired to a local Alloy server."""
    exe_name, missing = APPS[app]
    exe = shutil.which(exe_name)
    if exe is None:
        raise click.ClickException(missing)
    config = config_from(**kw)
    url = f"http://{config.host}:{config.port}"
    server = None
    if config.port == 0 or not _running(url, config.model):
        from alloy.serve.server import ServerThread

        click.echo(f"loading {config.model} ...", err=True)
        served = load_or_fail(config)
        if served.ctx < CLAUDE_PROMPT_TOKENS:
            click.echo(f"note: Claude Code's prompts are about {CLAUDE_PROMPT_TOKENS} tokens; "
                       f"the context window is {served.ctx} (raise it with --ctx)", err=True)
        server = ServerThread(config, served)
        try:
            server.start()
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {config.host}:{config.port}: "
                                       f"{exc.strerror or exc}") from None
        url = server.url
    env = dict(os.environ, **claude_env(url, config.model, config.api_key))
    try:
        code = subprocess.call([exe, *app_args], env=env)
    finally:
        if server is not None:
            server.stop()
    raise SystemExit(code)
