"""convert-tile-to-vector: the CPU lowering's driver; lowers a tile kernel to vector/scf/memref/arith with the CPU entry ABI.

The kernel function is rebuilt (as MLIR text, parsed back into the module):
tiles become `vector` values of the same shape, scalars stay scalars, scf
control flow is re-created with converted types. A pointer is an element
offset from exactly one kernel `!tile.ptr` argument: an `index` scalar part
plus, for pointer tiles, a `vector<...xi64>` per-element part. Each base
argument is viewed as a `memref<?xT>` built from its raw address.

The function becomes `name.program(pointers..., scalars..., pid0..2, num0..2)`
(one program instance; pointer parameters are `noalias`, so that LLVM may
interleave the loads and stores of different arguments) and the entry point
of docs/cpu-abi.md that calls it for each linear program id in [begin, end):
    void name(const int64_t *args, int64_t begin, int64_t end, int64_t g0, int64_t g1, int64_t g2)

The handlers live one concern a file: ops.py (elementwise and structural
ops), memory.py, reduce.py, dot_fma.py, scf.py (control flow), math.py
(expansions of math ops); stripmine.py plans and lowers loops over chunks.
The driver gives the lowering (lowering.py) this handler table.
"""
from __future__ import annotations

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.vector import dot_fma, memory, ops, reduce, scf, stripmine
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.target import AVX512, VectorTarget


HANDLERS = {
    "arith.constant": ops.lower_constant,
    "tile.program_id": ops.lower_program_id,
    "tile.num_programs": ops.lower_program_id,
    "tile.arange": ops.lower_arange,
    "tile.splat": ops.lower_splat,
    "tile.broadcast": ops.lower_reshape_like,
    "tile.expand_dims": ops.lower_reshape_like,
    "tile.reshape": ops.lower_reshape_like,
    "tile.trans": ops.lower_reshape_like,
    "tile.addptr": ops.lower_addptr,
    "tile.load": memory.lower_load,
    "tile.store": memory.lower_store,
    "tile.atomic_rmw": memory.lower_atomic_rmw,
    "tile.atomic_cas": memory.lower_atomic_cas,
    "tile.stack_alloc": memory.lower_stack_alloc,
    "tile.reduce": reduce.lower_reduce,
    "tile.dot": dot_fma.lower_dot,
    "scf.for": scf.lower_for,
    "scf.if": scf.lower_if,
    "scf.while": scf.lower_while,
    "func.return": ops.lower_return,
}


def handler_for(name: str):
    """The handler of an op (arith/math ops not in the table are elementwise), or None."""
    handler = HANDLERS.get(name)
    if handler is None and (name.startswith("arith.") or name.startswith("math.")):
        return ops.lower_elementwise
    return handler


def lower_function_text(func, target: VectorTarget) -> str:
    """The lowered entry-point function of one tile kernel, as MLIR text."""
    return Lowering(func, target, handler_for, stripmine.plan_group, stripmine.lower_group).run()


def convert_tile_to_vector(op, target: VectorTarget | None = None) -> None:
    """Pass: replace each tile kernel function of the module `op` by its lowered entry point for the CPU
    `target` (default: AVX-512, whose register blocking the lit tests show)."""
    target = target or AVX512
    module_op = op.operation if hasattr(op, "operation") else op
    funcs = tile.kernel_funcs(module_op)
    if not funcs:
        raise LoweringError("no tile kernel function (func.func with tile.kernel) in the module", module_op)
    ctx = module_op.context
    for f in funcs:
        with ctx:
            text = lower_function_text(f, target)
        try:
            new = ir.Module.parse(text, ctx)
        except ir.MLIRError as e:  # a lowering bug: show what was produced
            raise LoweringError(f"lowered IR does not verify: {e}\n{text}", f) from None
        for new_func in list(new.body.operations):
            new_func.operation.move_before(f.operation)
        f.operation.erase()
