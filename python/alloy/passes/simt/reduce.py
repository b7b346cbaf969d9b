"""tile.reduce in convert-tile-to-simt.

In the blocked layout (layout.py) the elements of one output of a
reduction sit in a fixed pattern of (thread, register) pairs, so two shapes of
reduction need little or no communication:

- **Along the fastest axis** (every later dimension of size 1: a whole tile,
  or the rows of a 2-D tile), sum/max/min/argmax/argmin on 32-bit values (f16,
  bf16, i8, i16 widened): a row is `C / vec` chunks of `vec` neighbours, dealt
  round-robin to the threads, so each thread holds whole chunks of fixed rows.
  Each thread combines its registers row by row ("slots"); the threads that
  share a row combine with a `gpu.shuffle xor` butterfly (shfl.sync.bfly, one
  step per lane bit the row spans, all rows at once); where a row spans
  several warps, or the result's layout puts a row in a thread that did not
  compute it, the first lane of each warp's row group writes its partials to
  workgroup memory (`[rows, warps per row]`), and after one barrier every
  thread reads and combines the partials of the rows its result registers
  hold. The buffer is the reduction's own, so at the top level of the kernel
  no second barrier follows; in a block that runs again (a loop body) one
  does, before the buffer's next writes, unless the block has another such
  reduction, whose barrier orders both (`_trailing_barrier`). Result registers
  that a thread already holds after the butterfly are taken from registers,
  without workgroup memory.
- **Along a slower axis whose inner extent is a multiple of `vec * threads`**
  (axis 0 of a wide 2-D tile): the elements of one output are in one thread
  at registers of fixed indices, and the output's layout gives that thread
  that output, so the reduction is register-only, on any element type.

Any other reduction goes through workgroup memory: the tile is stored, and
each thread computes its own elements of the result by walking the reduced
axis. argmax/argmin give the first index of the extreme value (of the first
NaN, if any) as i32; combining partials out of index order breaks ties by
the index. f16/bf16 combine in f32, i8/i16 in i32; integers are signed.
"""
from __future__ import annotations

import math
import weakref

from mlir import ir

from alloy.passes.errors import LoweringError
from alloy.passes.simt.layout import WARP, Blocked
from alloy.passes.simt.lowering import SimtLowering
from alloy.passes.simt.values import Distributed, Uniform, is_float

_COMBINE = {"sum": ("arith.addf", "arith.addi"), "max": ("arith.maximumf", "arith.maxsi"),
            "min": ("arith.minimumf", "arith.minsi")}
_ARG = ("argmax", "argmin")
_INF = {"f32": ("0x7F800000", "0xFF800000"), "f64": ("0x7FF0000000000000", "0xFFF0000000000000")}
# per lowering: block -> line index of the trailing barrier of its first own-buffer reduction (None: dropped)
_TRAILING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


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


def _better(lw: SimtLowering, kind: str, x: str, acc: str, t: str) -> str:
    """i1: x beats acc for argmax/argmin (strictly; a NaN beats any number)."""
    if not is_float(t):
        return lw.op(f"arith.cmpi {'sgt' if kind == 'argmax' else 'slt'}, {x}, {acc} : {t}")
    better = lw.op(f"arith.cmpf {'ogt' if kind == 'argmax' else 'olt'}, {x}, {acc} : {t}")
    xnan = lw.op(f"arith.cmpf uno, {x}, {x} : {t}")
    anan = lw.op(f"arith.cmpf uno, {acc}, {acc} : {t}")
    keep = lw.op(f"arith.xori {anan}, {lw.const('true', 'i1')} : i1")
    return lw.op(f"arith.ori {better}, {lw.op(f'arith.andi {xnan}, {keep} : i1')} : i1")


def _merge(lw: SimtLowering, kind: str, acc: list, new: list, t: str, ordered: bool) -> list:
    """Combine partial `new` into `acc` ([value] or [value, index]); `ordered`: new's indices come later."""
    if kind not in _ARG:
        return [_combine(lw, kind, acc[0], new[0], t)]
    (a, ia), (x, ix) = acc, new
    better = _better(lw, kind, x, a, t)
    if not ordered:  # equal values (or two NaNs): the lower index wins
        same = lw.op(f"arith.cmpf oeq, {x}, {a} : {t}" if is_float(t) else f"arith.cmpi eq, {x}, {a} : {t}")
        if is_float(t):
            nans = lw.op(f"arith.andi {lw.op(f'arith.cmpf uno, {x}, {x} : {t}')}, "
                         f"{lw.op(f'arith.cmpf uno, {a}, {a} : {t}')} : i1")
            same = lw.op(f"arith.ori {same}, {nans} : i1")
        first = lw.op(f"arith.cmpi slt, {ix}, {ia} : i32")
        better = lw.op(f"arith.ori {better}, {lw.op(f'arith.andi {same}, {first} : i1')} : i1")
    return [lw.op(f"arith.select {better}, {x}, {a} : {t}"), lw.op(f"arith.select {better}, {ix}, {ia} : i32")]


def _fold(lw: SimtLowering, kind: str, items: list, t: str, ordered: bool = True) -> list:
    """Combine partials (in index order if `ordered`) as a balanced tree of independent steps."""
    while len(items) > 1:
        pairs = [_merge(lw, kind, a, b, t, ordered) for a, b in zip(items[::2], items[1::2])]
        items = pairs + items[len(pairs) * 2:]
    return items[0]


def lower_reduce(lw: SimtLowering, op) -> None:
    src_v = op.operands[0]
    shape = tuple(src_v.type.shape)
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    kind = str(op.attributes["kind"]).strip('"')
    if not 0 <= axis < len(shape):
        raise LoweringError(f"reduce axis {axis} out of range for shape {shape}", op)
    if kind not in _COMBINE and kind not in _ARG:
        raise LoweringError(f"unknown reduce kind {kind!r}", op)
    src = lw.dist(src_v, op)
    if src.elem == "i1":
        raise LoweringError("reduce over i1 is not supported", op)
    r = op.results[0]
    out = _registers(lw, src, axis, kind, r)
    if out is None:
        out = _rows(lw, src, axis, kind, r, op.operation.block)
    if out is None:
        _through_memory(lw, src, axis, kind, r)
        return
    _bind(lw, r, out, src.elem, kind)


def _bind(lw: SimtLowering, r, out: list, elem: str, kind: str) -> None:
    """Bind reduce result r to its registers' partials ([value] or [value, index] each)."""
    if kind in _ARG:
        vals, relem = [p[1] for p in out], "i32"
    else:
        vals, relem = [_narrow(lw, p[0], elem) for p in out], elem
    if isinstance(r.type, ir.RankedTensorType):
        lw.env[r] = Distributed(vals, relem, tuple(r.type.shape))
    else:
        lw.env[r] = Uniform(vals[0], relem)


def _out_layout(lw: SimtLowering, r) -> Blocked:
    return lw.layout(tuple(r.type.shape) if isinstance(r.type, ir.RankedTensorType) else (1,))


# ------------------------------------------------------- register-only
def _registers(lw: SimtLowering, src: Distributed, axis: int, kind: str, r) -> list | None:
    """A slower axis with inner extent a multiple of vec * threads: each output's elements are in
    its own thread; None where that does not hold."""
    shape = src.shape
    lay = lw.layout(shape)
    inner, length = math.prod(shape[axis + 1:]), shape[axis]
    lo = _out_layout(lw, r)
    if inner == 1 or inner % (lay.vec * lay.threads) or (lo.vec, lo.threads) != (lay.vec, lay.threads):
        return None
    q = inner // (lay.vec * lay.threads)  # chunk rounds per inner block
    t = _wide(src.elem)
    out = []
    for ko in range(lo.regs):
        jo, v = divmod(ko, lay.vec)
        outer, ic = divmod(jo, q)
        items = []
        for c in range(length):
            x = _widen(lw, src.regs[((outer * length + c) * q + ic) * lay.vec + v], src.elem)
            items.append([x, lw.i32(c)] if kind in _ARG else [x])
        out.append(_fold(lw, kind, items, t))
    return out


# ------------------------------------------------------- along the rows
def _rows(lw: SimtLowering, src: Distributed, axis: int, kind: str, r, block) -> list | None:
    """The fastest axis: registers, a lane butterfly, and at most one workgroup-memory round."""
    shape = src.shape
    lay = lw.layout(shape)
    length, vec, threads = shape[axis], lay.vec, lay.threads
    t = _wide(src.elem)
    if math.prod(shape[axis + 1:]) != 1 or length < vec:
        return None
    per = length // vec  # chunks per row
    tp = min(per, threads)  # threads that share a row
    if tp > 1 and t not in ("f32", "i32"):
        return None
    rr = threads // tp  # row groups: rows per round of chunks
    cpr = max(1, per // threads)  # a thread's chunks per row
    arg = kind in _ARG
    slots = []  # this thread's rows: slot s is row s * rr + (tid % threads) // tp
    for s in range(lay.regs // (vec * cpr)):
        items = []
        for k in range(s * cpr * vec, (s + 1) * cpr * vec):
            x = _widen(lw, src.regs[k], src.elem)
            items.append([x, lw.pro_op(f"arith.remui {lw.flat(lay, k)}, {lw.i32(length)} : i32")] if arg else [x])
        slots.append(_fold(lw, kind, items, t))
    types = [t, "i32"] if arg else [t]
    width = lw.i32(WARP)
    for off in (16, 8, 4, 2, 1):
        if off < tp:
            other = []
            for acc in slots:
                parts = []
                for x, ty in zip(acc, types):
                    s = lw.new("s")
                    lw.emit(f"{s}, {lw.new('p')} = gpu.shuffle xor {x}, {lw.i32(off)}, {width} : {ty}")
                    parts.append(s)
                other.append(parts)
            slots = [_merge(lw, kind, a, b, t, ordered=False) for a, b in zip(slots, other)]
    lo = _out_layout(lw, r)
    picks = _held(lo, lay, tp, rr) if tp <= WARP else None
    if picks is not None:
        return [slots[s] for s in picks]
    return _partials(lw, slots, types, lay, lo, kind, tp, rr, block)


def _held(lo: Blocked, lay: Blocked, tp: int, rr: int) -> list[int] | None:
    """Slot of each result register when every thread already holds its result rows, else None."""
    picks = []
    for ko in range(lo.regs):
        slot = None
        for tid in range(lo.num_threads):
            row = (tid % lo.threads) * lo.vec + lo.offset(ko)
            if row % rr != (tid % lay.threads) // tp or slot not in (None, row // rr):
                return None
            slot = row // rr
        picks.append(slot)
    return picks


def _partials(lw: SimtLowering, slots: list, types: list, lay: Blocked, lo: Blocked, kind: str,
              tp: int, rr: int, block) -> list:
    """One workgroup-memory round: partial [row, warp of the row] by each row group's first lane,
    a barrier, then each thread combines the partials of its result rows."""
    wpr = max(1, tp // WARP)  # partials per row
    lanes = min(tp, WARP)
    nrows = lo.n
    tag = len(lw.wg)  # a new buffer per reduction
    bufs = [lw.wg_buffer(ty, nrows * wpr, f"red{tag}{c}") for c, ty in zip("vi", types)]
    tid = lw.tid()
    mine = tid if lay.threads == lw.nt else lw.pro_op(f"arith.remui {tid}, {lw.i32(lay.threads)} : i32")
    base = mine if lanes == 1 else lw.pro_op(f"arith.divui {mine}, {lw.i32(lanes)} : i32")
    conds = []
    if lanes > 1:
        lane = lw.pro_op(f"arith.andi {tid}, {lw.i32(lanes - 1)} : i32")
        conds.append(lw.pro_op(f"arith.cmpi eq, {lane}, {lw.i32(0)} : i32"))
    if lw.owner(lay) is not None:
        conds.append(lw.owner(lay))
    if len(conds) == 2:
        conds = [lw.pro_op(f"arith.andi {conds[0]}, {conds[1]} : i1")]
    if conds:
        lw.emit(f'"scf.if"({conds[0]}) ({{')
        lw.depth += 1
    for s, acc in enumerate(slots):
        idx = base if s == 0 else lw.pro_op(f"arith.addi {base}, {lw.i32(s * rr * wpr)} : i32")
        for buf, x in zip(bufs, acc):
            lw.wg_store(buf, idx, x)
    if conds:
        lw.emit('"scf.yield"() : () -> ()')
        lw.depth -= 1
        lw.emit("}, {\n}) : (i1) -> ()")
    top = lw.depth == 2  # straight-line kernel code: the buffer is not written again
    lw.barrier()
    out = []
    for ko in range(lo.regs):
        row = lw.flat(lo, ko)
        first = row if wpr == 1 else lw.pro_op(f"arith.muli {row}, {lw.i32(wpr)} : i32")
        items = []
        for i in range(wpr):
            idx = first if i == 0 else lw.pro_op(f"arith.addi {first}, {lw.i32(i)} : i32")
            items.append([lw.wg_load(buf, idx) for buf in bufs])
        out.append(_fold(lw, kind, items, types[0], ordered=False))
    if not top:
        _trailing_barrier(lw, block)
    return out


def _trailing_barrier(lw: SimtLowering, block) -> None:
    """Order this reduction's reads before its buffer's next writes (the block runs again, in a
    loop). A second own-buffer reduction in the same block does that for both, by its barrier
    (which lies between the first one's reads and its next writes, and vice versa), so only the
    first one in a block emits a trailing barrier, and the second one removes it."""
    seen = _TRAILING.setdefault(lw, {})
    if block not in seen:
        lw.barrier()
        seen[block] = len(lw.lines) - 1
        return
    if seen[block] is not None and lw.lines[seen[block]].strip() == "gpu.barrier":
        lw.lines[seen[block]] = ""
    seen[block] = None


# ------------------------------------------------------- through memory
def _through_memory(lw: SimtLowering, src: Distributed, axis: int, kind: str, r) -> None:
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
    arg = kind in _ARG
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
        lw.env[r] = Distributed(out, relem, tuple(r.type.shape))
    else:
        lw.env[r] = Uniform(out[0], relem)


def _walk(lw: SimtLowering, buf: str, t: str, base: str, stride: int, length: int, kind: str) -> str:
    """Combine buf[base + j * stride] for j < length (an scf.for); the result (or its index)."""
    arg = kind in _ARG
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
        na, nb = _merge(lw, kind, [acc, best], [x, j], t, ordered=True)
        lw.emit(f'"scf.yield"({na}, {nb}) : ({t}, i32) -> ()')
    lw.depth -= 1
    lw.emit(f'}}) : (i32, i32, i32, {", ".join(types)}) -> ({", ".join(types)})')
    return f"{r}#1" if arg else f"{r}#0"
