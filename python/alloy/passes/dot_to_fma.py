"""Lowering of tile.dot (part of convert-tile-to-vector): a vector.fma micro-kernel.

acc[i, :] += a[i, k] * b[k, :] for each row i and each k: a broadcast of one
element of `a` times a row of `b`, accumulated with vector.fma (f16/bf16
inputs are extended to the f32 accumulator; integers use muli/addi). Rows are
processed in blocks of MR so that MR accumulator rows stay in registers while
the rows of b stream through.
"""
from __future__ import annotations

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.tile_to_vector import Lowering, Sc, is_float, vtype

MR = 4  # accumulator rows per register block


def _extend(lw: Lowering, x: str, shape, src: str, dst: str) -> str:
    if src == dst:
        return x
    if is_float(src) and is_float(dst):
        return lw.op(f"arith.extf {x} : {vtype(shape, src)} to {vtype(shape, dst)}")
    if not is_float(src) and not is_float(dst):
        return lw.op(f"arith.extsi {x} : {vtype(shape, src)} to {vtype(shape, dst)}")
    raise LoweringError(f"dot of {src} inputs into a {dst} accumulator is not supported", None)


def lower_dot(lw: Lowering, op) -> None:
    a_v, b_v, c_v = op.operands
    (m, k), (k2, n), cshape = tile.shape_of(a_v.type), tile.shape_of(b_v.type), tile.shape_of(c_v.type)
    if k != k2 or tuple(cshape) != (m, n):
        raise LoweringError(f"dot shapes do not match: {m}x{k} @ {k2}x{n} + {cshape}", op)
    ea, eb, ec = (str(tile.element_type(v.type)) for v in (a_v, b_v, c_v))
    try:
        a = _extend(lw, lw.val(a_v, op).name, (m, k), ea, ec)
        b = _extend(lw, lw.val(b_v, op).name, (k, n), eb, ec)
    except LoweringError as e:
        raise LoweringError(str(e), op) from None
    acc = lw.val(c_v, op).name
    f = is_float(ec)
    rt = vtype((n,), ec)
    brows = [lw.extract(b, (kk,), (k, n), ec) for kk in range(k)]
    res = acc
    for i0 in range(0, m, MR):
        rows = list(range(i0, min(m, i0 + MR)))
        cs = {i: lw.extract(acc, (i,), (m, n), ec) for i in rows}
        for kk in range(k):
            for i in rows:
                s = lw.extract(a, (i, kk), (m, k), ec)
                sb = lw.splat(s, ec, (n,))
                if f:
                    cs[i] = lw.op(f"vector.fma {sb}, {brows[kk]}, {cs[i]} : {rt}")
                else:
                    p = lw.op(f"arith.muli {sb}, {brows[kk]} : {rt}")
                    cs[i] = lw.op(f"arith.addi {cs[i]}, {p} : {rt}")
        for i in rows:
            res = lw.insert(cs[i], res, (i,), (m, n), ec)
    lw.env[op.results[0]] = Sc(res, vtype((m, n), ec))
