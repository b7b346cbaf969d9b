"""The CPU lowering pipeline: named stages from tile IR to the LLVM dialect.

Each stage is a list of passes: names in `alloy.passes.PASSES` run as Python
passes, anything else is an upstream MLIR pass run through PassManager.
`al.inspect(level=...)` shows the module after any stage (see STAGES).
"""
from __future__ import annotations

from alloy.passes.errors import LoweringError
from alloy.passes.pipeline import run_passes

VECTOR_TO_LLVM = "convert-vector-to-llvm{reassociate-fp-reductions=1 vector-transpose-lowering=shuffle16x16}"

# f16/bf16 arithmetic runs in f32, rounded back after each op (passes/vector/target.py); bf16 conversions
# become integer arithmetic, so no kernel needs a compiler-runtime routine (__truncsfbf2, __extendhfsf2)
WIDEN_ARITH = "arith-emulate-unsupported-floats{source-types=f16,bf16 target-type=f32}"
WIDEN_MATH = "math-extend-to-supported-types{extra-types=f16,bf16 target-type=f32}"
EXPAND_BF16 = "expand-bf16-conversions"

MLIR_STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("tile-opt", ("tile-verify", "threads-to-loops", "tile-canonicalize", "tile-fold-dot-acc")),
    ("vector", ("convert-tile-to-vector", WIDEN_ARITH, WIDEN_MATH, EXPAND_BF16, "canonicalize", "cse")),
    ("scf", ("convert-vector-to-scf", "lower-affine", "convert-scf-to-cf", "expand-strided-metadata")),
    ("llvm-dialect", ("convert-math-to-llvm", "convert-math-to-libm", VECTOR_TO_LLVM, "finalize-memref-to-llvm",
                      "convert-ub-to-llvm", "convert-arith-to-llvm", "convert-func-to-llvm", "convert-cf-to-llvm",
                      "reconcile-unrealized-casts", "canonicalize", "cse")),
)

# "tile-ir" is the input, "llvm" the optimized LLVM IR, "asm" the host assembly
STAGES: tuple[str, ...] = ("tile-ir",) + tuple(name for name, _ in MLIR_STAGES) + ("llvm", "asm")


def lower_to_llvm_dialect(module_op, target, stages: dict | None = None, until: str | None = None) -> None:
    """Run the MLIR stages in place for `target` (a VectorTarget); record each stage's text in `stages`."""
    for name, passes in MLIR_STAGES:
        run_passes(module_op, passes, target)
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
