"""Lowering of tile.reduce (part of convert-tile-to-vector).

sum/max/min along the last axis: one vector.reduction per row; along another
axis: the rows of that axis combined elementwise (a tree of arith ops).
Float max/min propagate NaN like numpy (maximumf/minimumf); integers are
signed. argmax/argmin give the first index of the extreme value (of the first
NaN, if any) as i32: along the last axis per row, along another in one
elementwise pass over the rows of that axis.
"""
from __future__ import annotations

import itertools
import math

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.target import WIDENED_FLOATS
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
    if axis != len(shape) - 1:
        reduce = _reduce_leading if kind in _COMBINE else _arg_leading
        lw.env[r] = LoweredValue(reduce(lw, x, shape, axis, elem, kind), rt)
        return
    relem = "i32" if kind in ("argmax", "argmin") else elem
    lead = shape[:-1]
    held = lw.chunk_bufs.get(src_v)  # rows a strip-mined loop left in a buffer: an arg reduction loops over them
    buf = held[0] if held is not None and held[1] == "value" and kind not in _COMBINE else None
    scalars = []
    for i, row in enumerate(itertools.product(*[range(n) for n in lead])):
        v = lw.extract(x, row, shape, elem) if row else x
        at = (buf, math.prod(shape), i * shape[-1]) if buf is not None else None
        scalars.append(_reduce_row(lw, v, shape[-1], elem, kind, at))
    if not out_shape:
        lw.env[r] = LoweredValue(scalars[0], relem)
        return
    flat = (math.prod(out_shape),)
    vec = lw.op(f"vector.from_elements {', '.join(scalars)} : {vtype(flat, relem)}")
    lw.env[r] = LoweredValue(lw.shape_cast(vec, flat, out_shape, relem), rt)


def _reduce_row(lw: Lowering, v: str, n: int, elem: str, kind: str, held=None) -> str:
    """The reduction of row v (n elements); an arg reduction of a long row reads it from `held`
    ((buffer, its elements, the row's offset)) in a loop when given."""
    vt = vtype((n,), elem)
    f = is_float(elem)
    if kind in _COMBINE:
        red = _COMBINE[kind][2 if f else 3]
        return lw.op(f"vector.reduction <{red}>, {v} : {vt} into {elem}")
    width = 4 * lw.target.lanes(4)  # lanes of four f32 registers
    if n > width and n % width == 0:
        fold = _arg_chunks if held is None or n // width <= 4 else _arg_loop
        v, idx = fold(lw, held if fold is _arg_loop else v, n, width, elem, kind)
        elem = "f32" if elem in WIDENED_FLOATS else elem
        n, vt = width, vtype((width,), elem)
    else:
        idx = _iota(lw, n, 0)
    best = _reduce_row(lw, v, n, elem, "max" if kind == "argmax" else "min")
    b = lw.splat(best, elem, (n,))
    if f:
        eq = lw.op(f"arith.cmpf oeq, {v}, {b} : {vt}")
        nan = lw.op(f"arith.cmpf uno, {v}, {v} : {vt}")
        eq = lw.op(f"arith.ori {eq}, {nan} : {vtype((n,), 'i1')}")
    else:
        eq = lw.op(f"arith.cmpi eq, {v}, {b} : {vt}")
    it = vtype((n,), "i32")
    big = lw.const("dense<2147483647>", it)
    idx = lw.op(f"arith.select {eq}, {idx}, {big} : {vtype((n,), 'i1')}, {it}")
    return lw.op(f"vector.reduction <minsi>, {idx} : {it} into i32")


def _iota(lw: Lowering, n: int, start: int) -> str:
    return lw.const(f"dense<[{', '.join(str(start + i) for i in range(n))}]>", vtype((n,), "i32"))


def _better(lw: Lowering, x: str, best: str, vt: str, bt: str, elem: str, kind: str) -> str:
    """i1 lanes where x replaces best in an arg reduction scanned in index order: strictly better,
    or the first NaN over a number."""
    if not is_float(elem):
        return lw.op(f"arith.cmpi {'sgt' if kind == 'argmax' else 'slt'}, {x}, {best} : {vt}")
    better = lw.op(f"arith.cmpf {'ogt' if kind == 'argmax' else 'olt'}, {x}, {best} : {vt}")
    x_nan = lw.op(f"arith.cmpf uno, {x}, {x} : {vt}")
    best_num = lw.op(f"arith.cmpf ord, {best}, {best} : {vt}")
    return lw.op(f"arith.ori {better}, {lw.op(f'arith.andi {x_nan}, {best_num} : {bt}')} : {bt}")


def _arg_chunks(lw: Lowering, v: str, n: int, width: int, elem: str, kind: str) -> tuple[str, str]:
    """A long row folded into `width` lanes: (best value, its first index) per lane, chunk by chunk,
    so that LLVM meets vectors of a few registers instead of the whole row."""
    wide = "f32" if elem in WIDENED_FLOATS else elem  # f16/bf16 compared in f32 (exact), chunk by chunk
    vt, bt = vtype((width,), wide), vtype((width,), "i1")
    it = vtype((width,), "i32")

    def chunk(k):
        x = lw.op(f"vector.extract_strided_slice {v} {{offsets = [{k * width}], sizes = [{width}], "
                  f"strides = [1]}} : {vtype((n,), elem)} to {vtype((width,), elem)}")
        return x if wide == elem else lw.op(f"arith.extf {x} : {vtype((width,), elem)} to {vt}")

    best, idx = chunk(0), _iota(lw, width, 0)
    step = lw.const(f"dense<{width}>", it)
    at = idx
    for k in range(1, n // width):
        x = chunk(k)
        at = lw.op(f"arith.addi {at}, {step} : {it}")
        better = _better(lw, x, best, vt, bt, wide, kind)
        best = lw.op(f"arith.select {better}, {x}, {best} : {bt}, {vt}")
        idx = lw.op(f"arith.select {better}, {at}, {idx} : {bt}, {it}")
    return best, idx


def _arg_loop(lw: Lowering, held, n: int, width: int, elem: str, kind: str) -> tuple[str, str]:
    """_arg_chunks over a row in a stack buffer, one chunk per iteration of a loop."""
    buf, total, base = held
    wide = "f32" if elem in WIDENED_FLOATS else elem
    vt, bt, it = vtype((width,), wide), vtype((width,), "i1"), vtype((width,), "i32")

    def chunk(at):
        x = lw.op(f"vector.load {buf}[{at}] : memref<{total}x{elem}>, {vtype((width,), elem)}")
        return x if wide == elem else lw.op(f"arith.extf {x} : {vtype((width,), elem)} to {vt}")

    iota = _iota(lw, width, 0)
    prefix, (best, idx) = lw.results(2)
    c, b0, i0 = lw.new("c"), lw.new("best"), lw.new("idx")
    lw.emit(f'{prefix}"scf.for"({lw.index(width)}, {lw.index(n)}, {lw.index(width)}, {chunk(lw.index(base))}, '
            f"{iota}) ({{")
    lw.emit(f"^bb0({c}: index, {b0}: {vt}, {i0}: {it}):")
    lw.depth += 1
    x = chunk(lw.op(f"arith.addi {c}, {lw.index(base)} : index"))
    at = lw.op(f"arith.addi {lw.splat(lw.op(f'arith.index_cast {c} : index to i32'), 'i32', (width,))}, {iota} : {it}")
    better = _better(lw, x, b0, vt, bt, wide, kind)
    nb = lw.op(f"arith.select {better}, {x}, {b0} : {bt}, {vt}")
    ni = lw.op(f"arith.select {better}, {at}, {i0} : {bt}, {it}")
    lw.emit(f'"scf.yield"({nb}, {ni}) : ({vt}, {it}) -> ()')
    lw.depth -= 1
    lw.emit(f"}}) : (index, index, index, {vt}, {it}) -> ({vt}, {it})")
    return best, idx


def _axis_first(lw: Lowering, x: str, shape, axis: int, elem: str) -> tuple[str, tuple]:
    """x with `axis` moved to the front (a transpose unless it is there already), and its shape."""
    if axis == 0:
        return x, tuple(shape)
    perm = [axis] + [d for d in range(len(shape)) if d != axis]
    tshape = tuple(shape[d] for d in perm)
    return lw.op(f"vector.transpose {x}, [{', '.join(map(str, perm))}] : {vtype(shape, elem)} to "
                 f"{vtype(tshape, elem)}"), tshape


def _arg_leading(lw: Lowering, x: str, shape, axis: int, elem: str, kind: str) -> str:
    """argmax/argmin along a non-last axis: one pass over its rows, elementwise, keeping the best value and
    its index (a later row wins only if strictly better, or the first NaN over a number), so that no
    transpose of the whole tile to rows of a few elements reaches LLVM."""
    x, shape = _axis_first(lw, x, shape, axis, elem)
    rest = shape[1:]
    vt, it, bt = vtype(rest, elem), vtype(rest, "i32"), vtype(rest, "i1")
    best, idx = lw.extract(x, (0,), shape, elem), lw.const("dense<0>", it)
    for i in range(1, shape[0]):
        row = lw.extract(x, (i,), shape, elem)
        better = _better(lw, row, best, vt, bt, elem, kind)
        best = lw.op(f"arith.select {better}, {row}, {best} : {bt}, {vt}")
        idx = lw.op(f"arith.select {better}, {lw.const(f'dense<{i}>', it)}, {idx} : {bt}, {it}")
    return idx


def _reduce_leading(lw: Lowering, x: str, shape, axis: int, elem: str, kind: str) -> str:
    """Reduce a non-last axis: rows along `axis` combined elementwise."""
    x, shape = _axis_first(lw, x, shape, axis, elem)
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
