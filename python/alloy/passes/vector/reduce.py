"""Lowering of tile.reduce (part of convert-tile-to-vector).

sum/max/min along the last axis: one vector.reduction per row; along another
axis: the rows of that axis combined elementwise (a tree of arith ops).
Float max/min propagate NaN like numpy (maximumf/minimumf); integers are
signed. argmax/argmin give the first index of the extreme value (of the first
NaN, if any) as i32, computed along the last axis after a transpose.
"""
from __future__ import annotations

import itertools
import math

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.values import LoweredValue, is_float, vtype

_COMBINE = {  # kind -> (float op, int op, float reduction kind, int reduction kind)
    "sum": ("arith.addf", "arith.addi", "add", "add"),
    "max": ("arith.maximumf", "arith.maxsi", "maximumf", "maxsi"),
    "min": ("arith.minimumf", "arith.minsi", "minimumf", "minsi"),
}


def lower_reduce(lw: Lowering, op) -> None:
    src_v = op.operands[0]
    shape = tuple(tile.shape_of(src_v.type))
    elem = str(tile.element_type(src_v.type))
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    kind = str(op.attributes["kind"]).strip('"')
    if not 0 <= axis < len(shape):
        raise LoweringError(f"reduce axis {axis} out of range for shape {shape}", op)
    if kind not in _COMBINE and kind not in ("argmax", "argmin"):
        raise LoweringError(f"unknown reduce kind {kind!r}", op)
    if elem == "i1":
        raise LoweringError(f"reduce over {elem} is not supported", op)
    x = lw.val(src_v, op).name
    out_shape = shape[:axis] + shape[axis + 1:]
    r = op.results[0]
    rt = lw.ty(r.type, op)
    if kind in _COMBINE and axis != len(shape) - 1:
        lw.env[r] = LoweredValue(_reduce_leading(lw, x, shape, axis, elem, kind), rt)
        return
    if axis != len(shape) - 1:  # arg reductions: move the axis last
        perm = [d for d in range(len(shape)) if d != axis] + [axis]
        tshape = tuple(shape[d] for d in perm)
        x = lw.op(f"vector.transpose {x}, [{', '.join(map(str, perm))}] : {vtype(shape, elem)} to {vtype(tshape, elem)}")
        shape = tshape
    relem = "i32" if kind in ("argmax", "argmin") else elem
    lead = shape[:-1]
    scalars = []
    for row in itertools.product(*[range(n) for n in lead]):
        v = lw.extract(x, row, shape, elem) if row else x
        scalars.append(_reduce_row(lw, v, shape[-1], elem, kind))
    if not out_shape:
        lw.env[r] = LoweredValue(scalars[0], relem)
        return
    flat = (math.prod(out_shape),)
    vec = lw.op(f"vector.from_elements {', '.join(scalars)} : {vtype(flat, relem)}")
    lw.env[r] = LoweredValue(lw.shape_cast(vec, flat, out_shape, relem), rt)


def _reduce_row(lw: Lowering, v: str, n: int, elem: str, kind: str) -> str:
    vt = vtype((n,), elem)
    f = is_float(elem)
    if kind in _COMBINE:
        red = _COMBINE[kind][2 if f else 3]
        return lw.op(f"vector.reduction <{red}>, {v} : {vt} into {elem}")
    best = _reduce_row(lw, v, n, elem, "max" if kind == "argmax" else "min")
    b = lw.splat(best, elem, (n,))
    if f:
        eq = lw.op(f"arith.cmpf oeq, {v}, {b} : {vt}")
        nan = lw.op(f"arith.cmpf uno, {v}, {v} : {vt}")
        eq = lw.op(f"arith.ori {eq}, {nan} : {vtype((n,), 'i1')}")
    else:
        eq = lw.op(f"arith.cmpi eq, {v}, {b} : {vt}")
    it = vtype((n,), "i32")
    iota = lw.const(f"dense<[{', '.join(str(i) for i in range(n))}]>", it)
    big = lw.const(f"dense<{n}>", it)
    idx = lw.op(f"arith.select {eq}, {iota}, {big} : {vtype((n,), 'i1')}, {it}")
    return lw.op(f"vector.reduction <minsi>, {idx} : {it} into i32")


def _reduce_leading(lw: Lowering, x: str, shape, axis: int, elem: str, kind: str) -> str:
    """Reduce a non-last axis: rows along `axis` combined elementwise."""
    if axis != 0:
        perm = [axis] + [d for d in range(len(shape)) if d != axis]
        tshape = tuple(shape[d] for d in perm)
        x = lw.op(f"vector.transpose {x}, [{', '.join(map(str, perm))}] : {vtype(shape, elem)} to {vtype(tshape, elem)}")
        shape = tshape
    rest = shape[1:]
    comb = _COMBINE[kind][0 if is_float(elem) else 1]
    rt = vtype(rest, elem)
    rows = [lw.extract(x, (i,), shape, elem) for i in range(shape[0])]
    while len(rows) > 1:
        nxt = [lw.op(f"{comb} {a}, {b} : {rt}") for a, b in zip(rows[0::2], rows[1::2])]
        if len(rows) % 2:
            nxt.append(rows[-1])
        rows = nxt
    return rows[0]
