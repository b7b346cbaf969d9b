"""Op handlers of convert-tile-to-simt: constants, index ops, shapes, pointers, elementwise math.

Each handler takes (SimtLowering, op) and binds the op's results in `lw.env`
(see lowering.py and values.py for the value model).
"""
from __future__ import annotations

from mlir import ir

from alloy.passes.errors import LoweringError
from alloy.passes.simt.dot import elementwise, mma_ok, trans_for_dot
from alloy.passes.simt.lowering import SimtLowering, constant_scalar, gep, pointee, scalar_op
from alloy.passes.simt.regmap import broadcast_regs
from alloy.passes.simt.values import GLOBAL_PTR, DeferredTranspose, Distributed, Uniform


def generic(lw: SimtLowering, op) -> None:
    """Elementwise arith/math op: one scalar op per register (or one for scalars)."""
    if op.operation.name == "arith.constant":
        return constant(lw, op)
    if len(op.operation.regions):
        raise LoweringError(f"op with regions not supported by the {lw.target.name} lowering", op)
    if len(op.results) != 1:
        raise LoweringError(f"elementwise ops with several results are not supported by the {lw.target.name} "
                            "lowering", op)
    if elementwise(lw, op):
        return
    r = op.results[0]
    vals = [lw.val(v, op) for v in op.operands]
    if not isinstance(r.type, ir.RankedTensorType):
        lw.env[r] = Uniform(scalar_op(lw, op, [v.name for v in vals]), lw.ty(r.type))
        return
    shape = tuple(r.type.shape)
    regs = [lw.regs_of(v, shape) for v in vals]
    lw.env[r] = Distributed([scalar_op(lw, op, list(ops)) for ops in zip(*regs)], lw.ty(r.type), shape)


def constant(lw: SimtLowering, op) -> None:
    r = op.results[0]
    c = constant_scalar(lw, op)
    if isinstance(r.type, ir.RankedTensorType):
        shape = tuple(r.type.shape)
        lw.env[r] = Distributed([c] * lw.layout(shape).regs, lw.ty(r.type), shape)
    else:
        lw.env[r] = Uniform(c, lw.ty(r.type))


def program_id(lw: SimtLowering, op) -> None:
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    if axis not in (0, 1, 2):
        raise LoweringError(f"axis {axis} out of range 0..2", op)
    what = "gpu.block_id" if op.operation.name == "tile.program_id" else "gpu.grid_dim"
    i = lw.pro_op(f"{what} {'xyz'[axis]}")
    lw.env[op.results[0]] = Uniform(lw.pro_op(f"arith.index_cast {i} : index to i32", "pid"), "i32")


def arange(lw: SimtLowering, op) -> None:
    r = op.results[0]
    shape = tuple(r.type.shape)
    lw.env[r] = Distributed(lw.remat(r, lw.flats(shape)), "i32", shape)


def splat(lw: SimtLowering, op) -> None:
    r = op.results[0]
    shape = tuple(r.type.shape)
    x = lw.val(op.operands[0], op)
    lw.env[r] = Distributed([x.name] * lw.layout(shape).regs, x.type, shape)


def reshape_like(lw: SimtLowering, op) -> None:
    """expand_dims / reshape keep the flat order (free); a broadcast whose source elements each
    thread already holds takes registers (regmap.py); else broadcast / trans recompute or exchange."""
    name = op.operation.name
    r = op.results[0]
    shape = tuple(r.type.shape)
    src_v = op.operands[0]
    src = lw.dist(src_v, op)
    if name == "tile.trans" and src.elem in ("f16", "f32"):
        if trans_for_dot(r) and all(mma_ok(lw, u.owner) for u in r.uses):
            lw.env[r] = DeferredTranspose(src)
            return
    if name in ("tile.expand_dims", "tile.reshape"):
        lw.env[r] = Distributed(src.regs, src.elem, shape)
        return
    if name == "tile.trans" and len(shape) != 2:
        raise LoweringError(f"trans needs a 2-D tile, got shape {shape}", op)
    if name == "tile.broadcast":
        regs = broadcast_regs(lw, src.regs, tuple(src_v.type.shape), shape)
        if regs is not None:
            lw.env[r] = Distributed(regs, src.elem, shape)
            return
    idxs = lw.flats(shape)
    if lw.can_remat(src_v):
        lw.env[r] = Distributed(lw.remat(r, idxs), src.elem, shape)
        return
    src_shape = tuple(src_v.type.shape)
    if name == "tile.broadcast":
        mapped = [lw.broadcast_index(i, shape, src_shape) for i in idxs]
    else:
        mapped = [lw.trans_index(i, shape) for i in idxs]
    lw.env[r] = Distributed(lw.exchange(src, mapped), src.elem, shape)


def addptr(lw: SimtLowering, op) -> None:
    r = op.results[0]
    p, o = (lw.val(v, op) for v in op.operands)
    elem = pointee(r.type)
    ot = lw.ty(op.operands[1].type)
    if not isinstance(r.type, ir.RankedTensorType):
        lw.env[r] = Uniform(gep(lw, p.name, o.name, ot, elem), GLOBAL_PTR)
        return
    shape = tuple(r.type.shape)
    regs = [gep(lw, a, b, ot, elem) for a, b in zip(lw.regs_of(p, shape), lw.regs_of(o, shape))]
    lw.env[r] = Distributed(regs, GLOBAL_PTR, shape)


def func_return(lw: SimtLowering, op) -> None:
    if len(op.operands):
        raise LoweringError("a kernel returns nothing", op)
