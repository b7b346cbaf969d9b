"""The pass driver: run a list of pass names, Alloy's and upstream MLIR's, in order on a module.

Names in `alloy.passes.PASSES` run as Python passes, called with the target
description the pipeline chose (a `VectorTarget` for the CPU, a `SimtTarget`
for the GPUs; None lets a pass use its default); runs of other names go to
MLIR's PassManager as one pipeline each.
"""
from __future__ import annotations

from alloy.passes.errors import LoweringError


def run_passes(module_op, passes, target=None) -> None:
    """Run pass names (ours or upstream, with `{options}`) in order on a builtin.module operation."""
    from mlir.passmanager import PassManager

    from alloy.passes import PASSES

    upstream: list[str] = []

    def flush():
        if upstream:
            pm = PassManager.parse("builtin.module(" + ",".join(upstream) + ")", module_op.context)
            try:
                pm.run(module_op)
            except Exception as e:  # MLIRError carries the diagnostics
                raise LoweringError(f"upstream passes {','.join(upstream)} failed: {e}") from None
            upstream.clear()

    for name in passes:
        if name in PASSES:
            flush()
            PASSES[name](module_op, target)
        else:
            upstream.append(name)
    flush()


def check_upstream(entry: str, context) -> None:
    """Raise LoweringError when `entry` is not an upstream pass (with valid options)."""
    from mlir.passmanager import PassManager

    try:
        PassManager.parse(f"builtin.module({entry})", context)
    except Exception as e:  # noqa: BLE001 - the parser's message is the useful part
        import re

        name = re.match(r"[\w.\-]+", entry)
        raise LoweringError(f"unknown pass or bad options '{name.group(0) if name else entry}': "
                            f"{str(e).strip().splitlines()[0]}") from None
