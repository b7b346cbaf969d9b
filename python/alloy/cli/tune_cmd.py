"""``alloy tune``: time kernel configurations and keep the fastest.

    alloy tune                                  # the default sweep of every tunable builtin
    alloy tune matmul --shape 1024x1024x1024    # one builtin, one or more shapes
    alloy tune attention --shape 1x2048x128x4 --dtype float16
    alloy tune gemma3:270m                      # the compiled LLM engine's kernels on a model's shapes

Winners go to this device's tuning table (under the cache directory), which the
builtins read; a table of the winners is printed.
"""
from __future__ import annotations

import click

import alloy.config
from alloy.std import tuning


@click.command("tune")
@click.argument("ops", nargs=-1)
@click.option("--shape", "shapes", multiple=True, help="A shape to tune, e.g. 1024x1024x1024 (repeatable).")
@click.option("--dtype", default="float32", type=click.Choice(sorted(tuning.DTYPES)), show_default=True)
@click.option("--target", type=click.Choice(["cpu", "cuda"]), help="Where to tune (default: alloy.config's target).")
def tune_cmd(ops: tuple[str, ...], shapes: tuple[str, ...], dtype: str, target: str | None) -> None:
    """Tune builtins (matmul, dot_transpose_rhs, attention) for SHAPES, or a default sweep; or, given a
    MODEL (an Ollama tag, packaged name or .gguf path), the LLM engine's kernels on its shapes."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    if len(ops) == 1 and ops[0] not in tuning.TUNABLE:
        if shapes:
            raise click.BadParameter("--shape goes with a builtin, not a model", param_hint="--shape")
        return _tune_model(ops[0])
    unknown = [op for op in ops if op not in tuning.TUNABLE]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: not a tunable builtin; choose from "
                                 f"{', '.join(sorted(tuning.TUNABLE))}", param_hint="OPS")
    if target:
        alloy.config.set(target=target)
    ops = ops or tuple(tuning.TUNABLE)
    jobs = []
    for op in ops:
        try:
            chosen = [tuning.parse_shape(op, s) for s in shapes] if shapes else list(tuning.TUNABLE[op].sweep)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--shape") from None
        jobs += [(op, shape) for shape in chosen]
    console = Console()
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        for op, shape in jobs:
            label = f"{op} {'x'.join(map(str, shape))} {dtype}"
            task = progress.add_task(label, total=tuning.configs_of(op, shape, dtype))
            winner, times = tuning.tune(op, shape, dtype, lambda config, seconds: progress.advance(task))
            results.append((op, shape, winner, times))
    table = Table(title=f"tuned on {tuning.device_of()}")
    for column in ("builtin", "shape", "winner", "best", "slowest"):
        table.add_column(column)
    for op, shape, winner, times in results:
        table.add_row(op, "x".join(map(str, shape)), ", ".join(f"{k}={v}" for k, v in winner.constexprs.items()),
                      f"{times[winner] * 1e3:.3f} ms", f"{max(times.values()) * 1e3:.3f} ms")
    console.print(table)
    console.print(f"saved to {tuning.table_path()}")


def _tune_model(ref: str) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from alloy.serve import tune
    from alloy.serve.generate import load
    from alloy.serve.gguf.resolve import ModelNotFoundError, resolve_model

    try:
        resolved = resolve_model(ref)
    except ModelNotFoundError as exc:
        raise click.BadParameter(f"{ref}: not a tunable builtin (choose from {', '.join(sorted(tuning.TUNABLE))}) "
                                 f"and not a model ({exc})", param_hint="OPS") from None
    console = Console()
    with console.status(f"loading {resolved.name} ..."):
        model, _ = load(resolved.path)
    weights = tune.distinct_weights(model)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task(f"tune {resolved.name}", total=len(weights) * tune.candidates())
        results = tune.tune_model(model, progress=lambda: progress.advance(task))
    table = Table(title=f"{resolved.name}: prefill blocks tuned on {tuning.device_of()}")
    for column in ("weight", "shape", "type", "winner", "best", "slowest"):
        table.add_column(column)
    for r in results:
        table.add_row(r.weight, "x".join(map(str, r.shape)), r.qtype,
                      ", ".join(f"{k}={v}" for k, v in r.blocks.items()), f"{r.seconds * 1e3:.3f} ms",
                      f"{r.slowest * 1e3:.3f} ms")
    console.print(table)
    console.print(f"saved to {tuning.table_path()}")
