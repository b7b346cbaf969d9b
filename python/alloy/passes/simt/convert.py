"""convert-tile-to-simt: the GPU lowering's driver; lowers a tile kernel to per-thread code in the `gpu` dialect.

The kernel function is rebuilt as gpu-dialect text (lowering.py) and parsed
back as `gpu.module @alloy { gpu.func @name(...) kernel }`; the gpu.func gets
`simt.shared_bytes` (and `simt.dynamic_shared_bytes`) for the launch. The
handlers live one concern a file: ops.py (constants, index, shape and pointer
ops, elementwise math), memory.py, reduce.py, dot.py (matrix fragments),
scf.py (control flow), hopper_wgmma.py with hopper_wgmma_match.py (sm_90a K
loops on warpgroup MMA); math.py holds the targets' math functions. The
driver gives the lowering this handler table and the fragment-to-blocked
conversions; the target (target.py) comes from the pipeline.
"""
from __future__ import annotations

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.simt import dot, hopper_wgmma, memory, ops, reduce, scf, threads
from alloy.passes.simt.hopper_wgmma_match import plan_loop
from alloy.passes.simt.lowering import SimtLowering
from alloy.passes.simt.target import SimtTarget, for_function
from alloy.passes.simt.values import Fragments


def lower_for(lw: SimtLowering, op) -> None:
    """scf.for: a K loop the target can pipeline on warpgroup MMA goes to hopper_wgmma, any other to scf."""
    plan = plan_loop(lw, op) if lw.target.warpgroup_mma else None
    if plan is not None:
        hopper_wgmma.lower_loop(lw, op, plan)
    else:
        scf.lower_for(lw, op)


HANDLERS = {
    "arith.constant": ops.constant,
    "tile.program_id": ops.program_id,
    "tile.num_programs": ops.program_id,
    "tile.arange": ops.arange,
    "tile.splat": ops.splat,
    "tile.broadcast": ops.reshape_like,
    "tile.expand_dims": ops.reshape_like,
    "tile.reshape": ops.reshape_like,
    "tile.trans": ops.reshape_like,
    "tile.addptr": ops.addptr,
    "tile.load": memory.lower_load,
    "tile.store": memory.lower_store,
    "tile.atomic_rmw": memory.lower_atomic_rmw,
    "tile.atomic_cas": memory.lower_atomic_cas,
    "tile.reduce": reduce.lower_reduce,
    "tile.dot": dot.lower_dot,
    "scf.for": lower_for,
    "scf.if": scf.lower_if,
    "scf.while": scf.lower_while,
    "func.return": ops.func_return,
    **threads.HANDLERS,
}

TO_BLOCKED = {
    Fragments: dot.to_blocked,
    hopper_wgmma.WarpgroupAccumulator: hopper_wgmma.to_blocked,
}


def handler_for(name: str):
    """The handler of an op (arith/math ops not in the table are elementwise), or None."""
    handler = HANDLERS.get(name)
    if handler is None and (name.startswith("arith.") or name.startswith("math.")):
        return ops.generic
    return handler


def lower_function_text(func, target: SimtTarget) -> tuple[str, int, int, int]:
    """(gpu-dialect module text, block size, static and dynamic workgroup bytes) of one tile kernel."""
    lw = SimtLowering(func, target, handler_for, TO_BLOCKED)
    text = lw.run()
    return text, lw.nt, lw.shared_bytes(), lw.dynamic_shared


def convert_tile_to_simt(op, target: SimtTarget | None = None) -> None:
    """Pass: replace the tile kernel of module `op` by a gpu.module holding its gpu.func, for `target`
    (default: the kernel's `simt.target` attribute, else CUDA sm_90)."""
    module_op = op.operation if hasattr(op, "operation") else op
    funcs = tile.kernel_funcs(module_op)
    if len(funcs) != 1:
        raise LoweringError(f"expected one tile kernel function in the module, found {len(funcs)}", module_op)
    f = funcs[0]
    ctx = module_op.context
    with ctx:
        text, nt, smem, dyn = lower_function_text(f, for_function(f, target))
        try:
            new = ir.Module.parse(text, ctx)
        except ir.MLIRError as e:  # a lowering bug: show what was produced
            raise LoweringError(f"lowered IR does not verify: {e}\n{text}", f) from None
        gmod = list(new.body.operations)[0]
        gfunc = list(gmod.regions[0].blocks[0].operations)[0]
        i64 = ir.IntegerType.get_signless(64)
        gfunc.attributes["simt.shared_bytes"] = ir.IntegerAttr.get(i64, smem)
        if dyn:
            gfunc.attributes["simt.dynamic_shared_bytes"] = ir.IntegerAttr.get(i64, dyn)
        module_op.attributes["gpu.container_module"] = ir.UnitAttr.get()
        gmod.operation.move_before(f.operation)
        f.operation.erase()
