"""The CPU lowering pipeline: named stages from tile IR to the LLVM dialect.

Each stage is a list of passes: names in `alloy.passes.PASSES` run as Python
passes, anything else is an upstream MLIR pass run through PassManager.
`al.inspect(level=...)` shows the module after any stage (see STAGES).
"""
from __future__ import annotations

from alloy.passes.errors import LoweringError

VECTOR_TO_LLVM = "convert-vector-to-llvm{reassociate-fp-reductions=1 vector-transpose-lowering=shuffle16x16}"

MLIR_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tile-opt", ("tile-canonicalize", "tile-fold-dot-acc")),
    ("vector", ("convert-tile-to-vector", "canonicalize", "cse")),
    ("scf", ("convert-vector-to-scf", "lower-affine", "convert-scf-to-cf", "expand-strided-metadata")),
    ("llvm-dialect", ("convert-math-to-llvm", "convert-math-to-libm", VECTOR_TO_LLVM, "finalize-memref-to-llvm",
                      "convert-ub-to-llvm", "convert-arith-to-llvm", "convert-func-to-llvm", "convert-cf-to-llvm",
                      "reconcile-unrealized-casts", "canonicalize", "cse")),
)

# "tile-ir" is the input, "llvm" the optimized LLVM IR, "asm" the host assembly
STAGES: tuple[str, ...] = ("tile-ir",) + tuple(name for name, _ in MLIR_STAGES) + ("llvm", "asm")


def run_passes(module_op, passes) -> None:
    """Run a list of pass names (ours or upstream) in order on a builtin.module operation."""
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

    for p in passes:
        if p in PASSES:
            flush()
            PASSES[p](module_op, None)
        else:
            upstream.append(p)
    flush()


def lower_to_llvm_dialect(module_op, stages: dict | None = None, until: str | None = None) -> None:
    """Run the MLIR stages in place; record each stage's text in `stages` if given."""
    for name, passes in MLIR_STAGES:
        run_passes(module_op, passes)
        if stages is not None:
            stages[name] = str(module_op)
        if name == "llvm-dialect":
            check_llvm_dialect(module_op)
        if name == until:
            return


def check_llvm_dialect(module_op) -> None:
    """Raise naming the first op that did not reach the LLVM dialect (a lowering gap)."""
    from mlir import ir

    bad = []

    def visit(op):
        name = op.name
        if not (name.startswith("llvm.") or name == "builtin.module"):
            bad.append(op)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module_op.walk(visit)
    if bad:
        op = bad[0]
        text = str(op)
        raise LoweringError(f"{op.name} left after lowering to the LLVM dialect: {text[:300]}")
