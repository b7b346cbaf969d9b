"""tile.reduce in convert-tile-to-simt.

Whole-tile reductions (every other dimension of size 1) of sum/max/min on
32-bit-or-narrower types: each thread combines its registers, a warp
combines its threads with five `gpu.shuffle xor` steps (shfl.sync.bfly), lane 0
of each warp leaves its partial in workgroup memory, and after a barrier every
thread combines the warps' partials, so all threads hold the result.

Any other reduction goes through workgroup memory: the tile is stored, and
each thread computes its own elements of the result by walking the reduced
axis. argmax/argmin give the first index of the extreme value (of the first
NaN, if any) as i32. f16/bf16 combine in f32, i8/i16 in i32; integers are signed.
"""
from __future__ import annotations

import math

from mlir import ir

from alloy.passes.errors import LoweringError
from alloy.passes.simt_layout import WARP
from alloy.passes.simt_lower import D, SimtLowering, U, is_float

_COMBINE = {"sum": ("arith.addf", "arith.addi"), "max": ("arith.maximumf", "arith.maxsi"),
            "min": ("arith.minimumf", "arith.minsi")}
_INF = {"f32": ("0x7F800000", "0xFF800000"), "f64": ("0x7FF0000000000000", "0xFFF0000000000000")}


def _wide(elem: str) -> str:
    return {"f16": "f32", "bf16": "f32", "i8": "i32", "i16": "i32"}.get(elem, elem)


def _widen(lw: SimtLowering, x: str, elem: str) -> str:
    w = _wide(elem)
    if w == elem:
        return x
    return lw.op(f"arith.{'extf' if is_float(elem) else 'extsi'} {x} : {elem} to {w}")


def _narrow(lw: SimtLowering, x: str, elem: str) -> str:
    w = _wide(elem)
    if w == elem:
        return x
    return lw.op(f"arith.{'truncf' if is_float(elem) else 'trunci'} {x} : {w} to {elem}")


def _identity(lw: SimtLowering, kind: str, t: str) -> str:
    if kind == "sum":
        return lw.const("0.000000e+00" if is_float(t) else "0", t)
    want_max = kind in ("max", "argmax")  # the identity of max is the smallest value
    if is_float(t):
        return lw.const(_INF[t][1 if want_max else 0], t)
    bits = int(t[1:])
    return lw.const(-(1 << (bits - 1)) if want_max else (1 << (bits - 1)) - 1, t)


def _combine(lw: SimtLowering, kind: str, a: str, b: str, t: str) -> str:
    return lw.op(f"{_COMBINE[kind][0 if is_float(t) else 1]} {a}, {b} : {t}")


def lower_reduce(lw: SimtLowering, op) -> None:
    src_v = op.operands[0]
    shape = tuple(src_v.type.shape)
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    kind = str(op.attributes["kind"]).strip('"')
    if not 0 <= axis < len(shape):
        raise LoweringError(f"reduce axis {axis} out of range for shape {shape}", op)
    if kind not in _COMBINE and kind not in ("argmax", "argmin"):
        raise LoweringError(f"unknown reduce kind {kind!r}", op)
    src = lw.dist(src_v, op)
    if src.elem == "i1":
        raise LoweringError("reduce over i1 is not supported", op)
    r = op.results[0]
    whole = all(n == 1 for d, n in enumerate(shape) if d != axis)
    wide = _wide(src.elem)
    if whole and kind in _COMBINE and wide in ("f32", "i32"):
        x = _narrow(lw, _whole(lw, src, kind), src.elem)
        if isinstance(r.type, ir.RankedTensorType):
            rs = tuple(r.type.shape)
            lw.env[r] = D([x] * lw.layout(rs).regs, src.elem, rs)
        else:
            lw.env[r] = U(x, src.elem)
        return
    _through_memory(lw, src, axis, kind, r)


def _whole(lw: SimtLowering, src: D, kind: str) -> str:
    t = _wide(src.elem)
    lay = lw.layout(src.shape)
    regs = [_widen(lw, x, src.elem) for x in src.regs]
    acc = regs[0]
    for x in regs[1:]:
        acc = _combine(lw, kind, acc, x, t)
    own = lw.owner(lay)
    if own is not None:
        acc = lw.op(f"arith.select {own}, {acc}, {_identity(lw, kind, t)} : {t}")
    width = lw.i32(WARP)
    for off in (16, 8, 4, 2, 1):
        s = lw.new("s")
        lw.emit(f"{s}, {lw.new('p')} = gpu.shuffle xor {acc}, {lw.i32(off)}, {width} : {t}")
        acc = _combine(lw, kind, acc, s, t)
    nwarps = lw.nt // WARP
    if nwarps == 1:
        return acc
    buf = lw.wg_buffer(t, nwarps)
    tid = lw.tid()
    lane = lw.op(f"arith.remui {tid}, {lw.i32(WARP)} : i32")
    warp = lw.op(f"arith.divui {tid}, {lw.i32(WARP)} : i32")
    first = lw.op(f"arith.cmpi eq, {lane}, {lw.i32(0)} : i32")
    lw.emit(f'"scf.if"({first}) ({{')
    lw.depth += 1
    lw.wg_store(buf, warp, acc)
    lw.emit('"scf.yield"() : () -> ()')
    lw.depth -= 1
    lw.emit("}, {\n}) : (i1) -> ()")
    lw.barrier()
    parts = [lw.wg_load(buf, lw.i32(w)) for w in range(nwarps)]
    lw.barrier()
    acc = parts[0]
    for x in parts[1:]:
        acc = _combine(lw, kind, acc, x, t)
    return acc


def _through_memory(lw: SimtLowering, src: D, axis: int, kind: str, r) -> None:
    shape = src.shape
    t = _wide(src.elem)
    buf = lw.wg_buffer(t, math.prod(shape))
    lay = lw.layout(shape)
    for k, x in enumerate(src.regs):
        lw.wg_store(buf, lw.flat(lay, k), _widen(lw, x, src.elem))
    lw.barrier()
    out_shape = shape[:axis] + shape[axis + 1:]
    stride = math.prod(shape[axis + 1:])
    length = shape[axis]
    arg = kind in ("argmax", "argmin")
    relem = "i32" if arg else src.elem
    idxs = lw.flats(out_shape) if out_shape else [lw.i32(0)]
    out = []
    for o in idxs:
        coords = lw.unravel(o, out_shape) if out_shape else []
        base = lw.ravel(coords[:axis] + [lw.i32(0)] + coords[axis:], shape)
        out.append(_walk(lw, buf, t, base, stride, length, kind))
    lw.barrier()
    if not arg:
        out = [_narrow(lw, x, src.elem) for x in out]
    if isinstance(r.type, ir.RankedTensorType):
        lw.env[r] = D(out, relem, tuple(r.type.shape))
    else:
        lw.env[r] = U(out[0], relem)


def _walk(lw: SimtLowering, buf: str, t: str, base: str, stride: int, length: int, kind: str) -> str:
    """Combine buf[base + j * stride] for j < length (an scf.for); the result (or its index)."""
    arg = kind in ("argmax", "argmin")
    init = [_identity(lw, kind, t)] + ([lw.i32(0)] if arg else [])
    types = [t] + (["i32"] if arg else [])
    r = lw.new("r")
    j, acc, best = lw.new("j"), lw.new("acc"), lw.new("bi")
    lw.emit(f'{r}:{len(types)} = "scf.for"({lw.i32(0)}, {lw.i32(length)}, {lw.i32(1)}, {", ".join(init)}) ({{')
    lw.emit(f'^bb0({j}: i32, {acc}: {t}' + (f", {best}: i32" if arg else "") + "):")
    lw.depth += 1
    idx = lw.op(f"arith.addi {base}, {lw.op(f'arith.muli {j}, {lw.i32(stride)} : i32')} : i32")
    x = lw.wg_load(buf, idx)
    if not arg:
        lw.emit(f'"scf.yield"({_combine(lw, kind, acc, x, t)}) : ({t}) -> ()')
    else:
        if is_float(t):
            pred = "ogt" if kind == "argmax" else "olt"
            better = lw.op(f"arith.cmpf {pred}, {x}, {acc} : {t}")
            xnan = lw.op(f"arith.cmpf uno, {x}, {x} : {t}")
            anan = lw.op(f"arith.cmpf uno, {acc}, {acc} : {t}")
            keep = lw.op(f"arith.xori {anan}, {lw.const('true', 'i1')} : i1")
            better = lw.op(f"arith.ori {better}, {lw.op(f'arith.andi {xnan}, {keep} : i1')} : i1")
        else:
            better = lw.op(f"arith.cmpi {'sgt' if kind == 'argmax' else 'slt'}, {x}, {acc} : {t}")
        na = lw.op(f"arith.select {better}, {x}, {acc} : {t}")
        nb = lw.op(f"arith.select {better}, {j}, {best} : i32")
        lw.emit(f'"scf.yield"({na}, {nb}) : ({t}, i32) -> ()')
    lw.depth -= 1
    lw.emit(f'}}) : (i32, i32, i32, {", ".join(types)}) -> ({", ".join(types)})')
    return f"{r}#1" if arg else f"{r}#0"
