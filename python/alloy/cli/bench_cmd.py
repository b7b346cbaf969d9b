"""``alloy bench MODEL``: pp/tg throughput in llama-bench's shape (``-p 512 -n 128 -r 5 -t THREADS``)."""
from __future__ import annotations

import csv
import io
import json
import os

import click

from alloy.cli.serve_cmd import device_option, engine_option

__all__ = ["bench_cmd"]

COLUMNS = ("model", "quant", "engine", "threads", "test", "t/s")


@click.command("bench")
@click.argument("model", default="smollm2:135m")
@click.option("-p", "--n-prompt", type=click.IntRange(0), default=512, show_default=True,
              help="Prompt tokens of the pp test (0 skips it).")
@click.option("-n", "--n-gen", type=click.IntRange(0), default=128, show_default=True,
              help="Generated tokens of the tg test (0 skips it).")
@click.option("-r", "--repetitions", type=click.IntRange(1), default=5, show_default=True)
@click.option("-t", "--threads", type=click.IntRange(1), default=None, help="Threads (default: alloy.config's).")
@click.option("-o", "--output", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
@engine_option
@device_option
def bench_cmd(model, n_prompt, n_gen, repetitions, threads, output, engine, device):
    """Measure MODEL's prompt processing (pp) and generation (tg) speed in tokens per second."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from alloy.serve import bench
    from alloy.serve.generate import load
    from alloy.serve.gguf.resolve import ModelNotFoundError, quant_from_filename, resolve_model
    from alloy.serve.threads import share_cores

    threads = share_cores(engine, threads)
    try:
        resolved = resolve_model(model)
    except ModelNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    err = Console(stderr=True)
    with err.status(f"loading {resolved.name} ({engine} engine, {device}) ..."):
        try:
            loaded, _ = load(resolved.path, engine=engine, device=device)
        except (RuntimeError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    quant = quant_from_filename(os.path.basename(resolved.path)) or ""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True) as progress:
        task = progress.add_task(f"bench {resolved.name}", total=bench.runs_of(n_prompt, n_gen, repetitions))
        rows = bench.bench(loaded, engine=engine if device == "cpu" else f"{engine}-{device}", model_name=resolved.name, quant=quant, threads=threads,
                           n_prompt=n_prompt, n_gen=n_gen, repetitions=repetitions,
                           progress=lambda: progress.advance(task))
    click.echo(render(rows, output))


def render(rows, output: str) -> str:
    """The rows as a markdown table (llama-bench's look), JSON or CSV."""
    if output == "json":
        return json.dumps([r.as_dict() for r in rows], indent=2)
    if output == "csv":
        buf = io.StringIO()
        fields = [k for k in rows[0].as_dict() if k != "samples"] if rows else []
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow(r.as_dict())
        return buf.getvalue().rstrip("\n")
    cells = [(r.model, r.quant, r.engine, str(r.threads), r.test, f"{r.tokens_per_second:.2f} ± {r.std:.2f}")
             for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(COLUMNS), "| " + " | ".join("-" * w for w in widths) + " |"] + [line(c) for c in cells]
    if rows:
        out.append(f"\ndevice: {rows[0].device}")
    return "\n".join(out)
