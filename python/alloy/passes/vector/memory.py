"""Lowering of tile.load / tile.store / tile.atomic_rmw / tile.atomic_cas (part of convert-tile-to-vector).

Per tile, the contiguity analysis picks the access: one (masked) vector
load/store per row when the last dimension has stride 1 (rows stay separate
1-D vectors, which is what n-D vectors lower to), a scalar load + broadcast per row when it has stride 0
(unmasked), else a gather/scatter. Scalar accesses with a mask run under
scf.if. Atomics run lane by lane (an scf.for over the flattened tile) with
memref.atomic_rmw / llvm.cmpxchg and return the old values.
i1 data lives in memory as bytes.

A masked row of an element size the CPU cannot mask natively (AVX2: 8/16-bit;
NEON: any) goes piece by piece (PIECE lanes, fewer for short rows) through
stack buffers: a piece whose lanes are all on is a plain vector load/store,
only a partial piece takes the masked access that LLVM expands lane by lane.
Handing LLVM the whole masked row instead would make it emit one branch per
lane (thousands of blocks: minutes of code generation, slow code).
"""
from __future__ import annotations

import itertools
import math

from mlir import ir

from alloy.dialects import tile
from alloy.passes.vector.dot_fma import OperandStager, dot_operand_use, scratch
from alloy.passes.errors import LoweringError
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.values import LoweredPointer, LoweredValue, is_float, vtype, zero_text


def _to_mem(lw: Lowering, name: str, shape, elem: str) -> str:
    """Value -> memory representation (i1 -> i8)."""
    if elem != "i1":
        return name
    t = (lambda e: vtype(shape, e)) if shape else (lambda e: e)
    return lw.op(f"arith.extui {name} : {t('i1')} to {t('i8')}")


def _from_mem(lw: Lowering, name: str, shape, elem: str) -> str:
    if elem != "i1":
        return name
    z = lw.zeros(shape, "i8")
    t = vtype(shape, "i8") if shape else "i8"
    return lw.op(f"arith.cmpi ne, {name}, {z} : {t}")


def _rows(shape):
    return itertools.product(*[range(n) for n in shape[:-1]])


_BITS = {"f16": "i16", "bf16": "i16"}


def _bits_view(lw: Lowering, p: LoweredPointer, mem: str, melem: str) -> tuple[str, str]:
    """(memref, element type) that tiles of p move through: 16-bit floats as their i16 bits. LLVM
    widens a lane-wise (masked, gathered) access of bfloat through f32 conversions that call the
    compiler runtime (__truncsfbf2), which kernels do not link."""
    if melem in _BITS:
        return lw.bit_views[p.base], _BITS[melem]
    return mem, melem


def _bitcast(lw: Lowering, name: str, shape, src: str, dst: str) -> str:
    if src == dst:
        return name
    return lw.op(f"arith.bitcast {name} : {vtype(shape, src)} to {vtype(shape, dst)}")


class _BitsRows:
    """Passes rows loaded as bits on to a dot's OperandStager as values."""

    def __init__(self, lw: Lowering, stager, bits: str, elem: str, cols: int) -> None:
        self.lw, self.stager, self.bits, self.elem, self.cols = lw, stager, bits, elem, cols

    def row(self, i: int, x: str) -> None:
        self.stager.row(i, _bitcast(self.lw, x, (self.cols,), self.bits, self.elem))

    def wants_buffer(self, count: int) -> bool:
        return self.stager.wants_buffer(count)

    def rows_in_buffer(self, rbuf: str, count: int) -> None:
        self.stager.rows_in_buffer(rbuf, count, self.bits)


PIECE = 16  # lanes of one piece of a masked row the CPU cannot mask natively


def _element_bytes(elem: str) -> int:
    return max(1, int(elem[1:]) // 8) if elem[1:].isdigit() else 8


def _in_pieces(lw: Lowering, n: int, melem: str) -> bool:
    """Whether masked rows of n `melem` elements go piece by piece (the CPU cannot mask this element size)."""
    return _element_bytes(melem) not in lw.target.masked_bytes and n > 1


def _piece(n: int) -> int:
    """Lanes of one piece of a row of n: PIECE, or the largest divisor of n that fits one."""
    return math.gcd(n, PIECE)


def _piece_loop(lw: Lowering, n: int, size: int, mbuf: str, base: str, off: str, body) -> None:
    """for k in 0..n step _piece(n): body(base + k, off + k, piece mask, all lanes on); the mask bytes of the
    row are at mbuf[base:] (a buffer of `size` bytes)."""
    k, width = lw.new("k"), _piece(n)
    lw.emit(f'"scf.for"({lw.index(0)}, {lw.index(n)}, {lw.index(width)}) ({{')
    lw.emit(f"^bb0({k}: index):")
    lw.depth += 1
    at_buf = lw.op(f"arith.addi {base}, {k} : index")
    at_mem = lw.op(f"arith.addi {off}, {k} : index")
    bytes_ = lw.op(f"vector.load {mbuf}[{at_buf}] : memref<{size}xi8>, {vtype((width,), 'i8')}")
    mask = lw.op(f"arith.cmpi ne, {bytes_}, {lw.zeros((width,), 'i8')} : {vtype((width,), 'i8')}")
    full = lw.op(f"vector.reduction <and>, {mask} : {vtype((width,), 'i1')} into i1")
    body(at_buf, at_mem, mask, full)
    lw.emit('"scf.yield"() : () -> ()')
    lw.depth -= 1
    lw.emit("}) : (index, index, index) -> ()")


def masked_load_row(lw: Lowering, mem: str, melem: str, off: str, mask: str, other: str, n: int) -> str:
    """vector.maskedload of n contiguous elements at mem[off], piece by piece where the CPU needs it."""
    mt, row_t = f"memref<?x{melem}>", vtype((n,), melem)
    if not _in_pieces(lw, n, melem):
        return lw.op(f"vector.maskedload {mem}[{off}], {mask}, {other} : {mt}, {vtype((n,), 'i1')}, "
                     f"{row_t} into {row_t}")
    return masked_load_rows(lw, mem, melem, [off], [mask], [other], n)[0]


def _stage_rows(lw: Lowering, rows: list[str], n: int, elem: str, role: str) -> str:
    """A stack buffer (shared by the users of this `role`) holding the n-element rows one after another
    (i1 rows as bytes)."""
    melem = "i8" if elem == "i1" else elem
    buf = scratch(lw, (len(rows) * n,), melem, role)
    for r, row in enumerate(rows):
        if elem == "i1":
            row = lw.op(f"arith.extui {row} : {vtype((n,), 'i1')} to {vtype((n,), 'i8')}")
        lw.emit(f"vector.store {row}, {buf}[{lw.index(r * n)}] : memref<{len(rows) * n}x{melem}>, "
                f"{vtype((n,), melem)}")
    return buf


def masked_load_rows(lw: Lowering, mem: str, melem: str, offs: list[str], masks: list[str], others: list[str],
                     n: int) -> list[str]:
    """The masked rows of n contiguous elements at mem[offs[r]], piece by piece in one loop nest over rows and
    pieces (so that LLVM meets one small loop body, not a loop per row, and no vector wider than a row)."""
    rbuf = masked_load_rows_to_buffer(lw, mem, melem, offs, masks, others, n)
    bt = f"memref<{n * len(offs)}x{melem}>"
    return [lw.op(f"vector.load {rbuf}[{lw.index(r * n)}] : {bt}, {vtype((n,), melem)}") for r in range(len(offs))]


def masked_load_rows_to_buffer(lw: Lowering, mem: str, melem: str, offs: list[str], masks: list[str],
                               others: list[str], n: int) -> str:
    """masked_load_rows into a row-major stack buffer of the rows (returned), without reading them back."""
    total = n * len(offs)
    mt = f"memref<?x{melem}>"
    mbuf, obuf = _stage_rows(lw, masks, n, "i1", "row mask"), _stage_rows(lw, others, n, melem, "row other")
    rbuf = scratch(lw, (total,), melem, "row result")
    width = _piece(n)
    piece_t, bt = vtype((width,), melem), f"memref<{total}x{melem}>"

    def body(k, at, piece_mask, full):  # k: index into the row buffers, at: into memory
        res = lw.new("r")
        lw.emit(f'{res} = "scf.if"({full}) ({{')
        lw.emit(f"  %a{res[1:]} = vector.load {mem}[{at}] : {mt}, {piece_t}")
        lw.emit(f'  "scf.yield"(%a{res[1:]}) : ({piece_t}) -> ()')
        lw.emit("}, {")
        lw.emit(f"  %o{res[1:]} = vector.load {obuf}[{k}] : {bt}, {piece_t}")
        lw.emit(f"  %b{res[1:]} = vector.maskedload {mem}[{at}], {piece_mask}, %o{res[1:]} : {mt}, "
                f"{vtype((width,), 'i1')}, {piece_t} into {piece_t}")
        lw.emit(f'  "scf.yield"(%b{res[1:]}) : ({piece_t}) -> ()')
        lw.emit(f"}}) : (i1) -> ({piece_t})")
        lw.emit(f"vector.store {res}, {rbuf}[{k}] : {bt}, {piece_t}")

    _rows_in_pieces(lw, offs, n, mbuf, body)
    return rbuf


def _rows_in_pieces(lw: Lowering, offs: list[str], n: int, mbuf: str, body) -> None:
    """for each row r (memory offset offs[r]) and piece k: body(buffer index, memory index, piece mask,
    all lanes on); several rows loop over a stack buffer of their offsets."""
    if len(offs) == 1:
        _piece_loop(lw, n, len(offs) * n, mbuf, lw.index(0), offs[0], body)
        return
    obuf = scratch(lw, (len(offs),), "index", "row offsets")
    ot = f"memref<{len(offs)}xindex>"
    for r, off in enumerate(offs):
        lw.emit(f"memref.store {off}, {obuf}[{lw.index(r)}] : {ot}")
    r = lw.new("row")
    lw.emit(f'"scf.for"({lw.index(0)}, {lw.index(len(offs))}, {lw.index(1)}) ({{')
    lw.emit(f"^bb0({r}: index):")
    lw.depth += 1
    off = lw.op(f"memref.load {obuf}[{r}] : {ot}")
    base = lw.op(f"arith.muli {r}, {lw.index(n)} : index")
    _piece_loop(lw, n, len(offs) * n, mbuf, base, off, body)
    lw.emit('"scf.yield"() : () -> ()')
    lw.depth -= 1
    lw.emit("}) : (index, index, index) -> ()")


def masked_store_row(lw: Lowering, mem: str, melem: str, off: str, mask: str, value: str, n: int) -> None:
    """vector.maskedstore of n contiguous elements at mem[off], piece by piece where the CPU needs it."""
    mt = f"memref<?x{melem}>"
    if not _in_pieces(lw, n, melem):
        lw.emit(f"vector.maskedstore {mem}[{off}], {mask}, {value} : {mt}, {vtype((n,), 'i1')}, "
                f"{vtype((n,), melem)}")
        return
    masked_store_rows(lw, mem, melem, [off], [mask], [value], n)


def masked_store_rows(lw: Lowering, mem: str, melem: str, offs: list[str], masks: list[str], values: list[str],
                      n: int) -> None:
    """The masked stores of rows of n elements at mem[offs[r]], piece by piece in one loop nest
    (masked_load_rows)."""
    total = n * len(offs)
    mt = f"memref<?x{melem}>"
    mbuf, vbuf = _stage_rows(lw, masks, n, "i1", "row mask"), _stage_rows(lw, values, n, melem, "row value")
    width = _piece(n)
    piece_t, bt = vtype((width,), melem), f"memref<{total}x{melem}>"

    def body(k, at, piece_mask, full):
        x = lw.op(f"vector.load {vbuf}[{k}] : {bt}, {piece_t}")
        lw.emit(f'"scf.if"({full}) ({{')
        lw.emit(f"  vector.store {x}, {mem}[{at}] : {mt}, {piece_t}")
        lw.emit('  "scf.yield"() : () -> ()')
        lw.emit("}, {")
        lw.emit(f"  vector.maskedstore {mem}[{at}], {piece_mask}, {x} : {mt}, {vtype((width,), 'i1')}, {piece_t}")
        lw.emit('  "scf.yield"() : () -> ()')
        lw.emit("}) : (i1) -> ()")

    _rows_in_pieces(lw, offs, n, mbuf, body)


# --------------------------------------------------------------------- load
def lower_load(lw: Lowering, op) -> None:
    pv, mv, ov = tile.load_operands(op)
    _check_shapes(op, pv, [mv, ov, op.results[0]])
    p = lw.ptr(pv, op)
    mem, melem = lw.memref(p)
    r = op.results[0]
    if p.shape is None:
        idx = lw.offset_at(p, ())
        if mv is None:
            bmem, bits = _bits_view(lw, p, mem, melem)
            x = lw.op(f"memref.load {bmem}[{idx}] : memref<?x{bits}>")
            x = lw.op(f"arith.bitcast {x} : {bits} to {p.elem}") if bits != melem else _from_mem(lw, x, None, p.elem)
            lw.env[r] = LoweredValue(x, p.elem)
            return
        m = lw.val(mv, op)
        other = lw.val(ov, op).name if ov is not None else lw.zeros(None, p.elem)
        # a 16-bit float crosses the branch as its bits: a bf16 phi would call __truncsfbf2 on AVX2
        bmem, bits = _bits_view(lw, p, mem, melem)
        ytype = bits if bits != melem else p.elem
        if bits != melem:
            other = lw.op(f"arith.bitcast {other} : {p.elem} to {bits}")
        res = lw.new("r")
        lw.emit(f'{res} = "scf.if"({m.name}) ({{')
        lw.depth += 1
        x = lw.op(f"memref.load {bmem}[{idx}] : memref<?x{bits}>")
        if bits == melem:
            x = _from_mem(lw, x, None, p.elem)
        lw.emit(f'"scf.yield"({x}) : ({ytype}) -> ()')
        lw.depth -= 1
        lw.emit("}, {")
        lw.emit(f'  "scf.yield"({other}) : ({ytype}) -> ()')
        lw.emit(f"}}) : (i1) -> ({ytype})")
        if bits != melem:
            res = lw.op(f"arith.bitcast {res} : {bits} to {p.elem}")
        lw.env[r] = LoweredValue(res, p.elem)
        return
    shape = p.shape
    strides = lw.axis.strides(pv)
    mask = lw.as_tile(lw.val(mv, op), shape, "i1") if mv is not None else None
    other = None
    if ov is not None:
        other = _to_mem(lw, lw.as_tile(lw.val(ov, op), shape, p.elem), shape, p.elem)
    stager = rows = None
    use = dot_operand_use(r) if p.elem != "i1" and lw.chunk is None else None
    mem, bits = _bits_view(lw, p, mem, melem)
    if use is not None:  # rows go straight into the dot's scratch buffer
        stager = rows = OperandStager(lw, use[0], use[1], shape, p.elem)
        if bits != melem:
            rows = _BitsRows(lw, stager, bits, melem, shape[-1])
    if other is not None:
        other = _bitcast(lw, other, shape, melem, bits)
    out = _load_tile(lw, p, mem, bits, strides, mask, other, rows)
    if stager is not None:
        lw.env[r] = stager.finish()
        return
    out = _bitcast(lw, out, shape, bits, melem)
    lw.env[r] = LoweredValue(_from_mem(lw, out, shape, p.elem), vtype(shape, p.elem))


def _load_tile(lw: Lowering, p: LoweredPointer, mem: str, melem: str, strides, mask, other, stager=None) -> str | None:
    """The tile at p (in memory representation); its rows go to `stager` instead when given."""
    shape = p.shape
    n, total = shape[-1], math.prod(shape)
    mt = f"memref<?x{melem}>"
    if mask is not None and other is None:
        other = lw.zeros(shape, melem)
    if strides[-1] == 1 and len(shape) == 1:
        off = lw.offset_at(p, (0,) * len(shape))
        flat = (total,)
        if mask is None:
            x = lw.op(f"vector.load {mem}[{off}] : {mt}, {vtype(flat, melem)}")
        else:
            m = lw.shape_cast(mask, shape, flat, "i1")
            o = lw.shape_cast(other, shape, flat, melem)
            x = masked_load_row(lw, mem, melem, off, m, o, total)
        x = lw.shape_cast(x, flat, shape, melem)
        if stager is not None:
            for i in range(shape[0]):
                stager.row(i, lw.extract(x, (i,), shape, melem))
            return None
        return x
    looped = stager is not None and len(shape) == 2 and stager.wants_buffer(shape[0])
    if strides[-1] == 1 and mask is not None and (_in_pieces(lw, n, melem) or looped):  # rows in one loop nest
        rows = list(_rows(shape))
        args = (lw, mem, melem, [lw.offset_at(p, row + (0,)) for row in rows],
                [lw.extract(mask, row, shape, "i1") for row in rows], [lw.extract(other, row, shape, melem) for row in rows], n)
        if stager is not None:
            stager.rows_in_buffer(masked_load_rows_to_buffer(*args), len(rows))
            return None
        xs = masked_load_rows(*args)
        res = other
        for row, x in zip(rows, xs):
            res = lw.insert(x, res, row, shape, melem)
        return res
    if strides[-1] in (0, 1) and (mask is None or strides[-1] == 1):
        res = other if other is not None else lw.zeros(shape, melem)
        row_t = vtype((n,), melem)
        for row in _rows(shape):
            off = lw.offset_at(p, row + (0,))
            if strides[-1] == 0:
                s = lw.op(f"memref.load {mem}[{off}] : {mt}")
                x = lw.splat(s, melem, (n,))
            elif mask is None:
                x = lw.op(f"vector.load {mem}[{off}] : {mt}, {row_t}")
            else:
                m = lw.extract(mask, row, shape, "i1")
                o = lw.extract(other, row, shape, melem)
                x = masked_load_row(lw, mem, melem, off, m, o, n)
            if stager is not None:
                stager.row(row[0], x)
            else:
                res = lw.insert(x, res, row, shape, melem)
        return None if stager is not None else res
    flat = (total,)
    idx = lw.shape_cast(lw.voff_or_zero(p), shape, flat, "i64")
    base = p.soff if p.soff is not None else lw.index(0)
    m = lw.shape_cast(mask, shape, flat, "i1") if mask is not None else lw.const("dense<true>", vtype(flat, "i1"))
    o = lw.shape_cast(other, shape, flat, melem) if other is not None else lw.zeros(flat, melem)
    x = lw.op(f"vector.gather {mem}[{base}] [{idx}], {m}, {o} : {mt}, {vtype(flat, 'i64')}, "
              f"{vtype(flat, 'i1')}, {vtype(flat, melem)} into {vtype(flat, melem)}")
    x = lw.shape_cast(x, flat, shape, melem)
    if stager is not None:
        for i in range(shape[0]):
            stager.row(i, lw.extract(x, (i,), shape, melem))
        return None
    return x


# -------------------------------------------------------------------- store
def _check_shapes(op, ptr_v, others) -> None:
    want = ptr_v.type.shape if hasattr(ptr_v.type, "shape") else None
    for v in others:
        if v is not None and hasattr(v.type, "shape") and list(v.type.shape) != list(want or []):
            raise LoweringError(f"operand of shape {list(v.type.shape)} does not match the pointer tile's "
                                f"shape {list(want or [])}", op)


def _store_row(lw, mem: str, melem: str, off: str, x: str, mask: str | None, n: int) -> None:
    """Store the n-element vector x at mem[off], under the i1 vector `mask` when given."""
    if mask is None:
        lw.emit(f"vector.store {x}, {mem}[{off}] : memref<?x{melem}>, {vtype((n,), melem)}")
    else:
        masked_store_row(lw, mem, melem, off, mask, x, n)


def lower_store(lw: Lowering, op) -> None:
    ops = list(op.operands)
    _check_shapes(op, ops[0], ops[1:])
    p = lw.ptr(ops[0], op)
    mem, melem = lw.memref(p)
    mt = f"memref<?x{melem}>"
    if p.shape is None:
        v = lw.val(ops[1], op)
        if v.type.startswith("vector<"):
            raise LoweringError("storing a tile through a scalar pointer", op)
        idx = lw.offset_at(p, ())
        x = _to_mem(lw, v.name, None, p.elem)
        mem, bits = _bits_view(lw, p, mem, melem)  # 16-bit floats as their bits (no bf16 phis on AVX2)
        if bits != melem:
            x = lw.op(f"arith.bitcast {x} : {p.elem} to {bits}")
            mt = f"memref<?x{bits}>"
        if len(ops) > 2:
            m = lw.val(ops[2], op)
            lw.emit(f'"scf.if"({m.name}) ({{')
            lw.emit(f"  memref.store {x}, {mem}[{idx}] : {mt}")
            lw.emit('  "scf.yield"() : () -> ()')
            lw.emit("}, {\n}) : (i1) -> ()")
        else:
            lw.emit(f"memref.store {x}, {mem}[{idx}] : {mt}")
        return
    shape = p.shape
    n, total = shape[-1], math.prod(shape)
    strides = lw.axis.strides(ops[0])
    value = _to_mem(lw, lw.as_tile(lw.val(ops[1], op), shape, p.elem), shape, p.elem)
    mem, bits = _bits_view(lw, p, mem, melem)
    value, melem, mt = _bitcast(lw, value, shape, melem, bits), bits, f"memref<?x{bits}>"
    mask = lw.as_tile(lw.val(ops[2], op), shape, "i1") if len(ops) > 2 else None
    if strides[-1] == 1 and len(shape) == 1:
        off = lw.offset_at(p, (0,) * len(shape))
        flat = (total,)
        m = None if mask is None else lw.shape_cast(mask, shape, flat, "i1")
        _store_row(lw, mem, melem, off, lw.shape_cast(value, shape, flat, melem), m, total)
        return
    if strides[-1] == 1 and mask is not None and _in_pieces(lw, n, melem):  # all rows in one loop nest
        rows = list(_rows(shape))
        masked_store_rows(lw, mem, melem, [lw.offset_at(p, row + (0,)) for row in rows],
                          [lw.extract(mask, row, shape, "i1") for row in rows],
                          [lw.extract(value, row, shape, melem) for row in rows], n)
        return
    if strides[-1] == 1 or (strides[-1] == 0 and mask is None):
        for row in _rows(shape):
            off = lw.offset_at(p, row + (0,))
            if strides[-1] == 0:
                x = lw.extract(value, row + (n - 1,), shape, melem)
                lw.emit(f"memref.store {x}, {mem}[{off}] : {mt}")
                continue
            m = None if mask is None else lw.extract(mask, row, shape, "i1")
            _store_row(lw, mem, melem, off, lw.extract(value, row, shape, melem), m, n)
        return
    flat = (total,)
    idx = lw.shape_cast(lw.voff_or_zero(p), shape, flat, "i64")
    base = p.soff if p.soff is not None else lw.index(0)
    m = lw.shape_cast(mask, shape, flat, "i1") if mask is not None else lw.const("dense<true>", vtype(flat, "i1"))
    v = lw.shape_cast(value, shape, flat, melem)
    lw.emit(f"vector.scatter {mem}[{base}] [{idx}], {m}, {v} : {mt}, {vtype(flat, 'i64')}, "
            f"{vtype(flat, 'i1')}, {vtype(flat, melem)}")


# ------------------------------------------------------------------ atomics
_RMW = {
    ("add", True): "addf", ("add", False): "addi",
    ("max", True): "maxnumf", ("max", False): "maxs",
    ("min", True): "minnumf", ("min", False): "mins",
    ("xchg", True): "assign", ("xchg", False): "assign",
}


def _lanewise(lw: Lowering, p: LoweredPointer, elem: str, operands, mask, body) -> str:
    """Run body(lw, index, [lane values]) -> old value for each lane (under mask); the tile of results."""
    shape = p.shape
    if shape is None:
        idx = lw.offset_at(p, ())
        if mask is None:
            return body(lw, idx, [o.name for o in operands])
        res = lw.new("r")
        lw.emit(f'{res} = "scf.if"({mask.name}) ({{')
        lw.depth += 1
        old = body(lw, idx, [o.name for o in operands])
        lw.emit(f'"scf.yield"({old}) : ({elem}) -> ()')
        lw.depth -= 1
        z = zero_text(elem)
        lw.emit("}, {")
        lw.emit(f"  %zz{res[1:]} = arith.constant {z} : {elem}")
        lw.emit(f'  "scf.yield"(%zz{res[1:]}) : ({elem}) -> ()')
        lw.emit(f"}}) : (i1) -> ({elem})")
        return res
    total = math.prod(shape)
    flat = (total,)
    offs = lw.shape_cast(lw.voff_or_zero(p), shape, flat, "i64")
    vals = [lw.shape_cast(lw.as_tile(o, shape, elem), shape, flat, elem) for o in operands]
    m = lw.shape_cast(lw.as_tile(mask, shape, "i1"), shape, flat, "i1") if mask is not None else None
    init = lw.zeros(flat, elem)
    c0, cn, c1 = lw.index(0), lw.index(total), lw.index(1)
    res, i, acc = lw.new("r"), lw.new("i"), lw.new("acc")
    ft = vtype(flat, elem)
    lw.emit(f'{res} = "scf.for"({c0}, {cn}, {c1}, {init}) ({{')
    lw.emit(f"^bb0({i}: index, {acc}: {ft}):")
    lw.depth += 1
    o = lw.op(f"vector.extract {offs}[{i}] : i64 from {vtype(flat, 'i64')}")
    idx = lw.op(f"arith.index_cast {o} : i64 to index")
    if p.soff is not None:
        idx = lw.op(f"arith.addi {idx}, {p.soff} : index")
    lanes = [LoweredValue(lw.op(f"vector.extract {v}[{i}] : {elem} from {ft}"), elem) for v in vals]
    lm = LoweredValue(lw.op(f"vector.extract {m}[{i}] : i1 from {vtype(flat, 'i1')}"), "i1") if m is not None else None
    scalar_p = LoweredPointer(p.base, idx, None, None, p.elem)
    old = _lanewise(lw, scalar_p, elem, lanes, lm, body)
    nxt = lw.op(f"vector.insert {old}, {acc}[{i}] : {elem} into {ft}")
    lw.emit(f'"scf.yield"({nxt}) : ({ft}) -> ()')
    lw.depth -= 1
    lw.emit(f"}}) : (index, index, index, {ft}) -> ({ft})")
    return lw.shape_cast(res, flat, shape, elem)


def lower_atomic_rmw(lw: Lowering, op) -> None:
    ops = list(op.operands)
    p = lw.ptr(ops[0], op)
    mem, melem = lw.memref(p)
    kind = str(op.attributes["kind"]).strip('"')
    elem = p.elem
    if elem == "i1" or (kind, is_float(elem)) not in _RMW:
        raise LoweringError(f"atomic {kind} on {elem} is not supported", op)
    rmw = _RMW[(kind, is_float(elem))]
    value = lw.val(ops[1], op)
    mask = lw.val(ops[2], op) if len(ops) > 2 else None

    def body(lw, idx, lanes):
        return lw.op(f"memref.atomic_rmw {rmw} {lanes[0]}, {mem}[{idx}] : ({elem}, memref<?x{melem}>) -> {elem}")

    out = _lanewise(lw, p, elem, [value], mask, body)
    lw.env[op.results[0]] = LoweredValue(out, value.type if p.shape is None else vtype(p.shape, elem))


def lower_atomic_cas(lw: Lowering, op) -> None:
    ops = list(op.operands)
    p = lw.ptr(ops[0], op)
    mem, melem = lw.memref(p)
    elem = p.elem
    if elem == "i1":
        raise LoweringError("atomic_cas on i1 is not supported", op)
    cmp, value = lw.val(ops[1], op), lw.val(ops[2], op)
    ibits = {"f16": "i16", "bf16": "i16", "f32": "i32", "f64": "i64"}.get(elem)

    ibits = ibits or elem
    raw = lw.raw[p.base]

    def body(lw, idx, lanes):
        # llvm.cmpxchg on the integer bits of the element (memref has no CAS op that lowers here)
        off = lw.op(f"arith.index_cast {idx} : index to i64")
        addr = lw.op(f"llvm.getelementptr {raw}[{off}] : (!llvm.ptr, i64) -> !llvm.ptr, {ibits}")
        return lw.cmpxchg(addr, "!llvm.ptr", lanes[0], lanes[1], elem, ibits)

    out = _lanewise(lw, p, elem, [cmp, value], None, body)
    lw.env[op.results[0]] = LoweredValue(out, value.type if p.shape is None else vtype(p.shape, elem))


# ------------------------------------------------------------ stack buffers
def lower_stack_alloc(lw: Lowering, op) -> None:
    """tile.stack_alloc {size}: a buffer on the program's stack (threads-to-loops' shared, local and spill
    arrays), a base of its own after the kernel arguments."""
    elem = str(tile.ptr_elem(op.results[0].type))
    n = ir.IntegerAttr(op.attributes["size"]).value
    base = len(lw.func.arguments) + len([b for b in lw.mems if b >= len(lw.func.arguments)])
    count = lw.op(f"llvm.mlir.constant({n} : i64) : i64")
    mem_elem = "i8" if elem == "i1" else elem
    raw = lw.op(f"llvm.alloca {count} x {mem_elem} {{alignment = 64 : i64}} : (i64) -> !llvm.ptr", "stack")
    lw.bind_buffer(base, raw, elem)
    lw.env[op.results[0]] = LoweredPointer(base, None, None, None, elem)
