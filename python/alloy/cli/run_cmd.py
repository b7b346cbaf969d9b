"""``alloy run``: chat with a model in the terminal (one prompt, or an interactive session)."""
from __future__ import annotations

import asyncio
import sys

import click

from alloy.cli.serve_cmd import device_option, engine_option

__all__ = ["run_cmd"]


async def _reply(served, messages, max_tokens, sampling, out) -> str:
    from alloy.serve.api.common import ChoiceDelta, chat_events
    from alloy.serve.engine.request import Request

    prompt, text = served.chat_prompt(messages)
    stream = await served.submit(Request(prompt=prompt, max_tokens=max_tokens, sampling=sampling))
    answer = []
    try:
        async for ev in chat_events(served, stream, prompt_text=text):
            if isinstance(ev, ChoiceDelta):
                if ev.reasoning:
                    out(click.style(ev.reasoning, dim=True))
                if ev.content:
                    answer.append(ev.content)
                    out(ev.content)
    finally:
        stream.cancel()
    out("\n")
    return "".join(answer)


@click.command("run")
@click.argument("model", default="smollm2:135m")
@click.argument("prompt", required=False)
@click.option("--system", default=None, help="System prompt.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.8, show_default=True)
@click.option("--seed", type=int, default=None, help="Sampling seed (reproducible output).")
@click.option("--max-tokens", type=click.IntRange(1), default=512, show_default=True)
@click.option("--ctx", type=click.IntRange(16), default=None, help="Context window in tokens.")
@engine_option
@device_option
def run_cmd(model, prompt, system, temperature, seed, max_tokens, ctx, engine, device):
    """Chat with MODEL: answer PROMPT (or stdin) and exit, or start an interactive session."""
    from alloy.cli.serve_cmd import load_or_fail
    from alloy.serve.api.errors import ApiError
    from alloy.serve.config import ServeConfig
    from alloy.serve.engine.request import Sampling

    served = load_or_fail(ServeConfig(model=model, ctx=ctx, max_queue=0, engine=engine, device=device))
    sampling = Sampling(temperature=temperature, seed=seed)
    history = [{"role": "system", "content": system}] if system else []

    def out(s):
        click.echo(s, nl=False)
        sys.stdout.flush()

    async def main():
        served.engine.start()
        try:
            if prompt is not None or not sys.stdin.isatty():
                text = prompt if prompt is not None else sys.stdin.read()
                await _reply(served, history + [{"role": "user", "content": text}],
                             max_tokens, sampling, out)
                return
            click.echo(f"{served.name} — /bye or Ctrl-D to leave", err=True)
            while True:
                try:
                    line = await asyncio.get_running_loop().run_in_executor(None, input, ">>> ")
                except EOFError:
                    return
                if line.strip() in ("/bye", "/exit"):
                    return
                if not line.strip():
                    continue
                history.append({"role": "user", "content": line})
                answer = await _reply(served, history, max_tokens, sampling, out)
                history.append({"role": "assistant", "content": answer})
        finally:
            served.engine.stop()

    try:
        asyncio.run(main())
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    except KeyboardInterrupt:
        pass
