"""Handlers of the CPU lowering for elementwise arith/math ops and the structural tile ops (constants,
program ids, arange, splat, broadcast/reshape/transpose, addptr, return)."""
from __future__ import annotations

import math

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.vector.dot_fma import DotOperand, dot_operand_use, operand_from_buffer
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.math import expand
from alloy.passes.vector.values import CONTRACT, LoweredPointer, LoweredValue, vtype


def _attr_dict(op, extra: dict | None = None) -> str:
    attrs = {k: str(op.attributes[k]) for k in op.attributes}
    if extra:
        attrs.update(extra)
    if not attrs:
        return ""
    return "{" + ", ".join(f"{k} = {v}" for k, v in attrs.items()) + "}"


def lower_elementwise(lw: Lowering, op) -> None:
    """Elementwise arith/math op on scalars or tiles: same op on converted types."""
    name = op.operation.name
    if name == "arith.constant":
        return lower_constant(lw, op)
    if op.operation.regions and len(op.operation.regions):
        raise LoweringError("op with regions not supported by the CPU lowering", op)
    if name.startswith("math."):
        if expand(lw, op):
            return
    operands = [lw.val(v, op) for v in op.operands]
    rtypes = [lw.ty(r.type, op) for r in op.results]
    extra = {}
    if name in CONTRACT and "fastmath" in op.attributes and str(op.attributes["fastmath"]) == "#arith.fastmath<none>":
        extra["fastmath"] = "#arith.fastmath<contract>"
    prefix, names = lw.results(len(rtypes))
    lw.emit(f'{prefix}"{name}"({", ".join(o.name for o in operands)}) {_attr_dict(op, extra)} : '
            f'({", ".join(o.type for o in operands)}) -> ({", ".join(rtypes)})')
    for r, n, t in zip(op.results, names, rtypes):
        lw.env[r] = LoweredValue(n, t)


def lower_constant(lw: Lowering, op) -> None:
    r = op.results[0]
    attr = str(op.attributes["value"])
    t = lw.ty(r.type, op)
    if isinstance(r.type, ir.RankedTensorType):
        attr = attr.rsplit(" : ", 1)[0]
        lw.env[r] = LoweredValue(lw.op(f"arith.constant {attr} : {t}", "c"), t)
    else:
        lw.env[r] = LoweredValue(lw.op(f"arith.constant {attr}", "c"), t)


def lower_program_id(lw: Lowering, op) -> None:
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    src = lw.pids if op.operation.name == "tile.program_id" else lw.grid
    if axis not in (0, 1, 2):
        raise LoweringError(f"axis {axis} out of range 0..2", op)
    lw.env[op.results[0]] = LoweredValue(src[axis], "i32")


def lower_arange(lw: Lowering, op) -> None:
    start = ir.IntegerAttr(op.attributes["start"]).value
    end = ir.IntegerAttr(op.attributes["end"]).value
    t = lw.ty(op.results[0].type, op)
    elems = ", ".join(str(i) for i in range(start, end))
    lw.env[op.results[0]] = LoweredValue(lw.op(f"arith.constant dense<[{elems}]> : {t}", "c"), t)


def lower_splat(lw: Lowering, op) -> None:
    r = op.results[0]
    shape = lw.shape_of(r.type)
    x = lw.env[op.operands[0]]
    if isinstance(x, LoweredPointer):
        lw.env[r] = LoweredPointer(x.base, x.soff, None, shape, x.elem)
        return
    elem = str(tile.element_type(r.type))
    lw.env[r] = LoweredValue(lw.splat(x.name, elem, shape), lw.ty(r.type, op))


def lower_reshape_like(lw: Lowering, op) -> None:
    """broadcast / expand_dims / reshape / trans on value or pointer tiles."""
    name = op.operation.name
    src_v, r = op.operands[0], op.results[0]
    src_shape, shape = tile.shape_of(src_v.type), tile.shape_of(r.type)
    x = lw.env[src_v]
    if name == "tile.trans" and isinstance(x, DotOperand):  # staged transposed for its dot
        lw.env[r] = x
        return
    if name == "tile.trans" and src_v in lw.chunk_bufs and lw.chunk_bufs[src_v][1] == "value":
        use = dot_operand_use(src_v)
        if use is not None and use[0] == "bt":  # transposed for its dot from a strip-mined loop's buffer
            elem = str(tile.element_type(src_v.type))
            lw.env[r] = operand_from_buffer(lw, "bt", use[1], src_shape, elem, lw.chunk_bufs[src_v][0])
            return
    if isinstance(x, LoweredPointer):
        if x.voff is None:
            lw.env[r] = LoweredPointer(x.base, x.soff, None, shape, x.elem)
            return
        name_in, elem = x.voff, "i64"
    else:
        name_in, elem = x.name, str(tile.element_type(r.type))
    a, b = vtype(src_shape, elem), vtype(shape, elem)
    if name == "tile.trans" and elem in ("f16", "bf16"):  # as bits: LLVM widens a bfloat shuffle on AVX2
        ia, ib = vtype(src_shape, "i16"), vtype(shape, "i16")  # through __truncsfbf2, which kernels do not link
        bits = lw.op(f"arith.bitcast {name_in} : {a} to {ia}")
        out = lw.op(f"arith.bitcast {lw.op(f'vector.transpose {bits}, [1, 0] : {ia} to {ib}')} : {ib} to {b}")
    elif name == "tile.trans":
        out = lw.op(f"vector.transpose {name_in}, [1, 0] : {a} to {b}")
    elif name == "tile.broadcast":
        if len(src_shape) < len(shape):
            src_shape = (1,) * (len(shape) - len(src_shape)) + tuple(src_shape)
            name_in = lw.shape_cast(name_in, tile.shape_of(src_v.type), src_shape, elem)
        out = name_in
        if tuple(src_shape) != tuple(shape):
            out = lw.op(f"vector.broadcast {name_in} : {vtype(src_shape, elem)} to {b}")
    else:
        if math.prod(src_shape) != math.prod(shape):
            raise LoweringError(f"reshape from {src_shape} to {shape} changes the element count", op)
        out = lw.shape_cast(name_in, src_shape, shape, elem)
    if isinstance(x, LoweredPointer):
        lw.env[r] = LoweredPointer(x.base, x.soff, out, shape, x.elem)
    else:
        lw.env[r] = LoweredValue(out, b)


def lower_addptr(lw: Lowering, op) -> None:
    p = lw.ptr(op.operands[0], op)
    off_v = op.operands[1]
    r = op.results[0]
    shape = lw.shape_of(r.type)
    owner = off_v.owner
    scalar_src = None
    if shape is None:
        scalar_src = off_v
    elif isinstance(owner, ir.OpView) and owner.operation.name == "tile.splat":
        scalar_src = owner.operands[0]
    if scalar_src is not None:
        s = lw.val(scalar_src, op)
        ix = lw.op(f"arith.index_cast {s.name} : {s.type} to index")
        soff = ix if p.soff is None else lw.op(f"arith.addi {p.soff}, {ix} : index")
        lw.env[r] = LoweredPointer(p.base, soff, p.voff, shape, p.elem)
        return
    o = lw.val(off_v, op)
    oelem = str(tile.element_type(off_v.type))
    v = o.name
    if oelem != "i64":
        v = lw.op(f"arith.extsi {v} : {o.type} to {vtype(shape, 'i64')}")
    if p.voff is not None:
        v = lw.op(f"arith.addi {p.voff}, {v} : {vtype(shape, 'i64')}")
    lw.env[r] = LoweredPointer(p.base, p.soff, v, shape, p.elem)


def lower_return(lw: Lowering, op) -> None:
    if len(op.operands):
        raise LoweringError("a kernel returns nothing", op)
