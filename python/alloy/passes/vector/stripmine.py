"""Strip-mining of tile code (part of convert-tile-to-vector).

A run of consecutive ops on tiles of one shape — 1-D tiles of N lanes, or 2-D
tiles of R x C — is lowered as one loop over chunks (W lanes of a 1-D tile,
one row of a 2-D tile) instead of op by op on whole tiles. Straight-line code
on whole tiles makes LLVM keep every intermediate tile live (spilling, since
loads must precede all stores; and slow to compile), while the loop keeps one
chunk of each value in registers.

Rows longer than WIDE_ROW lanes are not one chunk: a 2-D run over such a tile
is a loop nest, rows outside and W-lane pieces of a row inside, so that no
vector handed to LLVM is much wider than a few registers (a 4096-lane row
would make every op hundreds of machine instructions, slow to compile and
spilled). A [1, C] broadcast source is then stored once before the nest and
read piece by piece.

Ops in a run: elementwise arith/math, splat, arange (1-D), broadcast from
[1, C] / [R, 1] (2-D), addptr, load, store, and sum/max/min reductions (1-D
to a scalar; 2-D along either axis). Inside the loop the usual handlers run
with tiles of the run's shape read as chunks (`Lowering.chunk`). A reduction
keeps its accumulator in the loop's iter_args (in a stack buffer for a
reduction along the columns of wide rows). Tiles that cross the loop
boundary go through stack buffers: values defined before the run are stored
once and read chunk by chunk (index/mask arithmetic is just recomputed),
values used after it are stored chunk by chunk and read back whole. Pure ops
of other shapes met inside the run that do not depend on it are emitted
before the loop. A run ends at anything else, at a use of a reduction
computed in the run, and where chunked order could differ from whole-tile
order (a load of an argument stored in the run, or a store to an argument
loaded through different pointers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from mlir import ir

from alloy.dialects import tile
from alloy.passes.vector.dot_fma import LOOPED_OPERAND, dot_operand_use, load_tile, scratch, store_tile
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.values import LoweredPointer, LoweredValue, is_float, vtype

LANES = 16  # chunk of a 1-D tile: one AVX-512 register of 32-bit lanes
MIN_CHUNKS = 4  # strip-mine 1-D tiles of at least this many chunks
MIN_ROWS, MIN_ELEMS = 2, 256  # and 2-D tiles of at least this size
WIDE_ROW = 256  # 2-D tiles with longer rows loop over LANES-lane pieces of each row
REDUCE_KINDS = ("sum", "max", "min")
UNROLL = "#llvm.loop_annotation<unroll = <count = 2>>"
_CHUNK_TILE_OPS = ("tile.splat", "tile.addptr", "tile.load", "tile.store", "tile.broadcast", "tile.arange")
_HOISTABLE = ("tile.program_id", "tile.num_programs", "tile.splat", "tile.arange", "tile.broadcast",
              "tile.expand_dims", "tile.reshape", "tile.trans", "tile.addptr")
_REMAT = frozenset({
    "arith.addi", "arith.subi", "arith.muli", "arith.cmpi", "arith.andi", "arith.ori", "arith.xori",
    "arith.extsi", "arith.extui", "arith.trunci", "arith.index_cast", "arith.select", "arith.minsi",
    "arith.maxsi", "arith.shli", "arith.shrsi", "arith.shrui", "tile.addptr",
})
_COMBINE = {"sum": ("arith.addf", "arith.addi", "add", "add"),
            "max": ("arith.maximumf", "arith.maxsi", "maximumf", "maxsi"),
            "min": ("arith.minimumf", "arith.minsi", "minimumf", "minsi")}


@dataclass
class Group:
    shape: tuple  # (N,) or (R, C)
    chunk: tuple  # (W,) or (C,)
    pre: list  # ops emitted before the loop
    ops: list  # the strip-mined ops, in order
    end: int  # index after the last op of the run
    reduces: list = field(default_factory=list)


def _shape(v):
    return tile.shape_of(v.type)


def _is_tile(v) -> bool:
    return isinstance(v.type, ir.RankedTensorType)


def _name(op) -> str:
    return op.operation.name


def _kind(op) -> str:
    return str(op.attributes["kind"]).strip('"')


def _group_shape(op):
    """The tile shape op works on when it can run chunk by chunk, else None."""
    name = _name(op)
    if op.operation.regions and len(op.operation.regions):
        return None
    if not (name in _CHUNK_TILE_OPS or name == "tile.reduce" or name.startswith("arith.")
            or name.startswith("math.")):
        return None
    if name == "tile.reduce":
        if _kind(op) not in REDUCE_KINDS:
            return None
        return _shape(op.operands[0])
    outs = [_shape(r) for r in op.results if _is_tile(r)]
    if name == "tile.store":
        outs = [_shape(op.operands[0])]
    if not outs or len(set(outs)) != 1 or any(s is None for s in outs):
        return None
    shape = outs[0]
    if len(shape) not in (1, 2):
        return None
    if name == "tile.arange" and len(shape) != 1:
        return None
    if name == "tile.load" and dot_operand_use(op.results[0]) is not None and math.prod(shape) < LOOPED_OPERAND:
        return None  # staged straight into the dot's buffer instead (a big one: from the loop's buffer)
    if name == "arith.constant":
        attr = op.attributes["value"]
        if not (isinstance(attr, ir.DenseElementsAttr) and attr.is_splat):
            return None
    for v in op.operands:
        if not _is_tile(v):
            continue
        s = _shape(v)
        if s == shape:
            continue
        if name == "tile.broadcast" and len(shape) == 2 and s in ((1, shape[1]), (shape[0], 1)):
            continue
        return None
    if name == "tile.broadcast" and len(shape) == 1:
        return None
    return shape


def _worth(shape) -> tuple | None:
    """Chunk shape for a run over `shape`, or None when it is too small to loop over."""
    if len(shape) == 1:
        n = shape[0]
        return (LANES,) if n % LANES == 0 and n >= MIN_CHUNKS * LANES else None
    r, c = shape
    if c > WIDE_ROW and c % LANES == 0:
        return (LANES,)
    return (c,) if r >= MIN_ROWS and r * c >= MIN_ELEMS and c >= 8 else None


def _hoistable(op) -> bool:
    name = _name(op)
    if op.operation.regions and len(op.operation.regions):
        return False
    return name in _HOISTABLE or name.startswith("arith.") or name.startswith("math.")


def _ptr_base(v) -> int | None:
    """The kernel argument a pointer value derives from, when evident from the IR."""
    for _ in range(64):
        if isinstance(v, ir.BlockArgument):
            owner = v.owner.owner
            return v.arg_number if owner is not None and owner.operation.name == "func.func" else None
        op = v.owner
        if op.operation.name not in ("tile.addptr", "tile.splat", "tile.broadcast", "tile.expand_dims",
                                     "tile.reshape"):
            return None
        v = op.operands[0]
    return None


def plan_group(lw: Lowering, ops, i: int) -> Group | None:
    shape = _group_shape(ops[i])
    chunk = _worth(shape) if shape is not None else None
    if chunk is None:
        return None
    group, pre, pending_pre = [], [], []
    in_group: set = set()
    reduced: set = set()
    loaded: dict = {}  # base -> pointer values loaded through
    stored: set = set()
    j = i
    while j < len(ops):
        op = ops[j]
        deps = set(op.operands)
        if deps & reduced:
            break
        if _group_shape(op) != shape:
            if _hoistable(op) and not deps & in_group:
                pending_pre.append(op)
                j += 1
                continue
            break
        name = _name(op)
        if name == "tile.load":
            b = _ptr_base(op.operands[0])
            if b is None or b in stored:
                break
            loaded.setdefault(b, set()).add(op.operands[0])
        elif name == "tile.store":
            b = _ptr_base(op.operands[0])
            if b is None or any(p != op.operands[0] for p in loaded.get(b, ())):
                break
            stored.add(b)
        pre += pending_pre
        pending_pre = []
        group.append(op)
        in_group.update(op.results)
        if name == "tile.reduce":
            reduced.add(op.results[0])
        j += 1
    if not any(_name(o) in ("tile.load", "tile.store", "tile.reduce") or _name(o).startswith("math.")
               for o in group):
        return None
    return Group(shape, chunk, pre, group, j - len(pending_pre), [o for o in group if _name(o) == "tile.reduce"])


def rematerializable(v, depth: int = 0) -> bool:
    """Cheap index/mask arithmetic (no memory, no float math) that a loop recomputes instead of buffering."""
    if not _is_tile(v):
        return True
    if isinstance(v, ir.BlockArgument):
        return False
    d = v.owner
    name = _name(d)
    if name in ("tile.splat", "tile.arange"):
        return True
    if name == "tile.broadcast":
        return _shape(d.operands[0]) != _shape(v)
    if name == "arith.constant":
        attr = d.attributes["value"]
        return isinstance(attr, ir.DenseElementsAttr) and attr.is_splat
    if name not in _REMAT or depth > 8:
        return False
    return all(rematerializable(o, depth + 1) for o in d.operands)


class _Run:
    """Emission state of one strip-mined loop."""

    def __init__(self, lw: Lowering, g: Group) -> None:
        self.lw, self.g = lw, g
        self.shape, self.chunk = g.shape, g.chunk
        self.size = g.shape[0] * (g.shape[1] if len(g.shape) == 2 else 1)
        self.two_d = len(g.shape) == 2
        self.wide = self.two_d and g.chunk[0] != g.shape[1]  # rows in pieces: a (row, column) loop nest
        self.row = self.col = self.off = self.c32 = None  # loop indices: row (2-D), column / 1-D chunk start
        self.row_bufs: dict = {}  # [1, C] broadcast source -> its stack buffer (wide rows)
        self.column_accs: dict = {}  # reduction along axis 0 of wide rows -> its accumulator buffer

    # --------------------------------------------------------- buffers
    def stage_in(self, v):
        """Store a whole tile defined before the loop into a buffer: (buffer, kind, meta)."""
        lw, x = self.lw, self.lw.env[v]
        if isinstance(x, LoweredPointer):
            if x.voff is None:
                return None, "ptr-scalar", x
            buf = scratch(lw, self.shape, "i64")
            store_tile(lw, x.voff, buf, self.shape, "i64")
            return buf, "ptr", x
        e = _mem_elem(v)
        buf = scratch(lw, self.shape, e)
        name = x.name
        if str(tile.element_type(v.type)) == "i1":
            name = lw.op(f"arith.extui {name} : {vtype(self.shape, 'i1')} to {vtype(self.shape, 'i8')}")
        store_tile(lw, name, buf, self.shape, e)
        return buf, "value", None

    def load_chunk(self, buf, kind, meta, v):
        lw, w = self.lw, self.chunk
        if kind == "ptr-scalar":
            return LoweredPointer(meta.base, meta.soff, None, w, meta.elem)
        e = _mem_elem(v)
        x = lw.op(f"vector.load {buf}[{self.off}] : memref<{self.size}x{e}>, {vtype(w, e)}")
        if kind == "ptr":
            return LoweredPointer(meta.base, meta.soff, x, w, meta.elem)
        if str(tile.element_type(v.type)) == "i1":
            return LoweredValue(lw.op(f"arith.cmpi ne, {x}, {lw.zeros(w, 'i8')} : {vtype(w, 'i8')}"), vtype(w, "i1"))
        return LoweredValue(x, vtype(w, e))

    def store_chunk(self, r, buf) -> None:
        lw, w = self.lw, self.chunk
        x, e = lw.env[r], _mem_elem(r)
        if isinstance(x, LoweredPointer):  # one i64 offset per lane, the scalar part folded in
            parts = [x.voff] if x.voff is not None else []
            if x.soff is not None:
                parts.append(lw.splat(lw.op(f"arith.index_cast {x.soff} : index to i64"), "i64", w))
            name = parts[0] if len(parts) == 1 else (
                lw.op(f"arith.addi {parts[0]}, {parts[1]} : {vtype(w, 'i64')}") if parts else lw.zeros(w, "i64"))
        else:
            name = x.name
            if str(tile.element_type(r.type)) == "i1":
                name = lw.op(f"arith.extui {name} : {vtype(w, 'i1')} to {vtype(w, 'i8')}")
        lw.emit(f"vector.store {name}, {buf}[{self.off}] : memref<{self.size}x{e}>, {vtype(w, e)}")

    def read_back(self, r, buf, meta):
        lw, e = self.lw, _mem_elem(r)
        x = load_tile(lw, buf, self.shape, e)
        elem = tile.element_type(r.type)
        if tile.is_ptr(elem):
            return LoweredPointer(meta[0], None, x, self.shape, meta[1])
        if str(elem) == "i1":
            z = lw.zeros(self.shape, "i8")
            return LoweredValue(lw.op(f"arith.cmpi ne, {x}, {z} : {vtype(self.shape, 'i8')}"), vtype(self.shape, "i1"))
        return LoweredValue(x, vtype(self.shape, e))

    # ----------------------------------------------------------- chunks
    def convert(self, op) -> None:
        """Lower one op of the run (or of a rematerialized chain) for the current chunk."""
        lw, name = self.lw, _name(op)
        if name == "tile.arange":
            start = ir.IntegerAttr(op.attributes["start"]).value
            base = lw.op(f"arith.addi {self.c32}, {lw.const(start, 'i32')} : i32")
            w = self.chunk[0]
            t = vtype((w,), "i32")
            iota = lw.const(f"dense<[{', '.join(str(i) for i in range(w))}]>", t)
            lw.env[op.results[0]] = LoweredValue(lw.op(f"arith.addi {lw.splat(base, 'i32', (w,))}, {iota} : {t}"), t)
        elif name == "tile.broadcast" and _shape(op.operands[0]) != self.shape:
            self._broadcast(op)
        else:
            lw._convert_op(op)

    def _broadcast(self, op) -> None:
        """[1, C] -> the row itself; [R, 1] -> element r splat over the row (pointers alike)."""
        lw = self.lw
        src, r = op.operands[0], op.results[0]
        x = lw.env[src]
        rows, cols = self.shape
        s_shape = _shape(src)
        if isinstance(x, LoweredPointer) and x.voff is None:
            lw.env[r] = LoweredPointer(x.base, x.soff, None, self.chunk, x.elem)
            return
        vec, elem = (x.voff, "i64") if isinstance(x, LoweredPointer) else (x.name, str(tile.element_type(src.type)))
        if s_shape == (1, cols) and self.wide:
            out = self._row_piece(src)
        elif s_shape == (1, cols):
            out = lw.extract(vec, (0,), s_shape, elem)
        else:
            flat = lw.shape_cast(vec, s_shape, (rows,), elem)
            s = lw.op(f"vector.extract {flat}[{self.row}] : {elem} from {vtype((rows,), elem)}")
            out = lw.splat(s, elem, self.chunk)
        lw.env[r] = LoweredPointer(x.base, x.soff, out, self.chunk, x.elem) if isinstance(x, LoweredPointer) else LoweredValue(out, vtype(self.chunk, elem))

    def stage_row(self, src) -> None:
        """Store a [1, C] broadcast source (value or pointer offsets) once, before the loop nest over wide rows."""
        lw, x, cols = self.lw, self.lw.env[src], self.shape[1]
        if isinstance(x, LoweredPointer):
            if x.voff is None:
                return
            name, e = x.voff, "i64"
        else:
            name, e = x.name, _mem_elem(src)
            if str(tile.element_type(src.type)) == "i1":
                name = lw.op(f"arith.extui {name} : {vtype((1, cols), 'i1')} to {vtype((1, cols), 'i8')}")
        buf = scratch(lw, (cols,), e)
        store_tile(lw, lw.shape_cast(name, (1, cols), (cols,), e), buf, (cols,), e)
        self.row_bufs[src] = (buf, e)

    def _row_piece(self, src) -> str:
        """The piece of a staged [1, C] source at the current column (i1 back from bytes)."""
        lw = self.lw
        buf, e = self.row_bufs[src]
        x = lw.op(f"vector.load {buf}[{self.col}] : memref<{self.shape[1]}x{e}>, {vtype(self.chunk, e)}")
        if str(tile.element_type(src.type)) == "i1":
            return lw.op(f"arith.cmpi ne, {x}, {lw.zeros(self.chunk, 'i8')} : {vtype(self.chunk, 'i8')}")
        return x

    def row_sources(self, ops, remat, bound: set) -> list:
        """[1, C] sources of the broadcasts the loop nest will emit: in the run and in recomputed chains."""
        found, seen = [], set(bound)

        def visit(op):
            if _name(op) == "tile.broadcast" and _shape(op.operands[0]) == (1, self.shape[1]):
                if op.operands[0] not in found:
                    found.append(op.operands[0])

        def chain(v):
            if v in seen or not _is_tile(v) or _shape(v) != self.shape or isinstance(v, ir.BlockArgument):
                return
            seen.add(v)
            visit(v.owner)
            for o in v.owner.operands:
                chain(o)

        for op in ops:
            visit(op)
        for v in remat:
            chain(v)
        return found

    def emit_chain(self, v, bound: set) -> None:
        """Emit the ops computing tile v (and its unbound tile operands of the run's shape)."""
        if v in bound or not _is_tile(v) or _shape(v) != self.shape:
            return
        d = v.owner
        for o in d.operands:
            self.emit_chain(o, bound)
        self.convert(d)
        bound.update(d.results)

    def reduce_init(self, op) -> tuple[str, str]:
        """Identity and type of a reduction's loop-carried accumulator (the inner loop's for wide rows)."""
        e = str(tile.element_type(op.operands[0].type))
        n = self.shape[0] if self.two_d and _axis(op) == 1 and not self.wide else self.chunk[0]
        t = vtype((n,), e)
        return self.lw.const(f"dense<{_identity(_kind(op), e)}>", t), t

    def reduce_chunk(self, op, acc: str | None) -> str | None:
        lw = self.lw
        e = str(tile.element_type(op.operands[0].type))
        x = lw.val(op.operands[0], op).name
        f = is_float(e)
        kind = _kind(op)
        combine = _COMBINE[kind][0 if f else 1]
        if self.wide and _axis(op) == 0:  # accumulated in its buffer, piece by piece
            buf, t = self.column_accs[op], f"memref<{self.shape[1]}x{e}>"
            old = lw.op(f"vector.load {buf}[{self.col}] : {t}, {vtype(self.chunk, e)}")
            lw.emit(f"vector.store {lw.op(f'{combine} {old}, {x} : {vtype(self.chunk, e)}')}, {buf}[{self.col}] : "
                    f"{t}, {vtype(self.chunk, e)}")
            return None
        if self.two_d and _axis(op) == 1 and not self.wide:
            s = lw.op(f"vector.reduction <{_COMBINE[kind][2 if f else 3]}>, {x} : {vtype(self.chunk, e)} into {e}")
            return lw.op(f"vector.insert {s}, {acc}[{self.row}] : {e} into {vtype((self.shape[0],), e)}")
        return lw.op(f"{combine} {acc}, {x} : {vtype(self.chunk, e)}")

    def reduce_result(self, op, acc: str) -> LoweredValue:
        e = str(tile.element_type(op.operands[0].type))
        if self.two_d:
            return LoweredValue(acc, vtype(tile.shape_of(op.results[0].type), e))
        red = _COMBINE[_kind(op)][2 if is_float(e) else 3]
        return LoweredValue(self.lw.op(f"vector.reduction <{red}>, {acc} : {vtype(self.chunk, e)} into {e}"), e)


def _axis(op) -> int:
    return ir.IntegerAttr(op.attributes["axis"]).value


def _mem_elem(v) -> str:
    e = tile.element_type(v.type)
    if tile.is_ptr(e):
        return "i64"
    return "i8" if str(e) == "i1" else str(e)


def _identity(kind: str, elem: str) -> str:
    if kind == "sum":
        return "0.000000e+00" if is_float(elem) else "0"
    if is_float(elem):
        inf = {"f32": "0x7F800000", "f64": "0x7FF0000000000000", "f16": "0x7C00", "bf16": "0x7F80"}[elem]
        ninf = {"f32": "0xFF800000", "f64": "0xFFF0000000000000", "f16": "0xFC00", "bf16": "0xFF80"}[elem]
        return ninf if kind == "max" else inf
    bits = int(elem[1:])
    return str(-(1 << (bits - 1))) if kind == "max" else str((1 << (bits - 1)) - 1)


class _LoopNest:
    """The loops of one run: over chunks (1-D), rows (2-D), or rows and pieces of each row (wide rows), opened
    on construction (the run's reductions carried as iter_args) and closed by `close()`."""

    def __init__(self, lw: Lowering, run: _Run, g: Group) -> None:
        self.lw, self.run = lw, run
        if run.wide:
            for op in g.reduces:
                if _axis(op) == 0:
                    self._column_acc(op, g.shape[1])
            self.carried = [op for op in g.reduces if _axis(op) == 1]
            self.rows = self._open(g.shape[0], 1, [self._row_init(op) for op in self.carried], unroll=False)
            run.row = self.rows.iv
            self.pieces = self._open(g.shape[1], g.chunk[0], [run.reduce_init(op) for op in self.carried])
            run.col = self.pieces.iv
            run.off = lw.op(f"arith.addi {lw.op(f'arith.muli {run.row}, {lw.index(g.shape[1])} : index')}, "
                            f"{run.col} : index")
            self.acc_of = dict(zip(self.carried, self.pieces.args))
            return
        self.carried = list(g.reduces)
        upper, step = (g.shape[0], 1) if run.two_d else (g.shape[0], g.chunk[0])
        self.rows = self.pieces = self._open(upper, step, [run.reduce_init(op) for op in self.carried])
        if run.two_d:
            run.row, run.off = self.rows.iv, lw.op(f"arith.muli {self.rows.iv}, {lw.index(g.shape[1])} : index")
        else:
            run.col = run.off = self.rows.iv
            run.c32 = lw.op(f"arith.index_cast {self.rows.iv} : index to i32")
        self.acc_of = dict(zip(self.carried, self.rows.args))

    def _open(self, upper: int, step: int, inits, unroll: bool = True) -> "_Loop":
        lw = self.lw
        prefix, names = lw.results(len(inits))
        loop = _Loop(lw.new("c"), [lw.new("acc") for _ in inits], names, [t for _, t in inits], unroll)
        lw.emit(f'{prefix}"scf.for"({", ".join([lw.index(0), lw.index(upper), lw.index(step)] + [i for i, _ in inits])}) ({{')
        lw.emit(f'^bb0({", ".join([f"{loop.iv}: index"] + [f"{a}: {t}" for a, t in zip(loop.args, loop.types)])}):')
        lw.depth += 1
        return loop

    def _end(self, loop: "_Loop", yields) -> None:
        lw, vts = self.lw, loop.types
        lw.emit(f'"scf.yield"({", ".join(yields)}) : ({", ".join(vts)}) -> ()')
        lw.depth -= 1
        # fully unrolled, a chunk loop would turn back into the straight-line code it replaces
        attrs = f" {{llvm.loop_annotation = {UNROLL}}}" if loop.unroll else ""
        lw.emit(f'}}){attrs} : ({", ".join(["index"] * 3 + vts)}) -> ({", ".join(vts)})')

    def _row_init(self, op) -> tuple[str, str]:
        e = str(tile.element_type(op.operands[0].type))
        t = vtype((self.run.shape[0],), e)
        return self.lw.const(f"dense<{_identity(_kind(op), e)}>", t), t

    def _column_acc(self, op, cols: int) -> None:
        """The stack buffer accumulating a reduction along axis 0 of wide rows, filled with its identity."""
        lw, w = self.lw, self.run.chunk
        e = str(tile.element_type(op.operands[0].type))
        buf = scratch(lw, (cols,), e)
        init = lw.const(f"dense<{_identity(_kind(op), e)}>", vtype(w, e))
        loop = self._open(cols, w[0], [])
        lw.emit(f"vector.store {init}, {buf}[{loop.iv}] : memref<{cols}x{e}>, {vtype(w, e)}")
        self._end(loop, [])
        self.run.column_accs[op] = buf

    def close(self) -> dict:
        """Close the loops; the final accumulator of each carried reduction."""
        lw, run = self.lw, self.run
        self._end(self.pieces, [self.acc_of[op] for op in self.carried])
        if self.pieces is self.rows:
            return dict(zip(self.carried, self.rows.results))
        rows_next = []
        for op, piece_acc, row_acc in zip(self.carried, self.pieces.results, self.rows.args):
            e = str(tile.element_type(op.operands[0].type))
            red = _COMBINE[_kind(op)][2 if is_float(e) else 3]
            s = lw.op(f"vector.reduction <{red}>, {piece_acc} : {vtype(run.chunk, e)} into {e}")
            rows_next.append(lw.op(f"vector.insert {s}, {row_acc}[{run.row}] : {e} into {vtype((run.shape[0],), e)}"))
        self._end(self.rows, rows_next)
        return dict(zip(self.carried, self.rows.results))


@dataclass
class _Loop:
    iv: str
    args: list
    results: list
    types: list
    unroll: bool


def lower_group(lw: Lowering, g: Group) -> None:
    for op in g.pre:
        lw._convert_op(op)
    run = _Run(lw, g)
    bufs = lw.chunk_bufs  # tile -> its buffer, from an earlier loop
    in_group = {r for op in g.ops for r in op.results}
    group_ops = {op.operation for op in g.ops}
    outside = []
    for op in g.ops:
        for v in op.operands:
            if v not in in_group and _is_tile(v) and _shape(v) == g.shape and v not in outside:
                outside.append(v)
    remat = [v for v in outside if v not in bufs and rematerializable(v)]
    staged = {v: bufs.get(v) or run.stage_in(v) for v in outside if v not in remat}
    escaping = [r for op in g.ops for r in op.results
                if _is_tile(r) and any(u.owner.operation not in group_ops for u in r.uses)]
    esc_remat = [r for r in escaping if rematerializable(r)]
    out_bufs = {r: scratch(lw, g.shape, _mem_elem(r)) for r in escaping if r not in esc_remat and
                _shape(r) == g.shape}
    saved = dict(lw.env)
    if run.wide:
        for src in run.row_sources(g.ops, remat, set(staged)):
            run.stage_row(src)
    nest = _LoopNest(lw, run, g)
    ptr_meta: dict = {}
    lw.chunk = (g.shape, g.chunk)
    try:
        bound = set()
        for v, (buf, kind, meta) in staged.items():
            lw.env[v] = run.load_chunk(buf, kind, meta, v)
            bound.add(v)
        for v in remat:
            run.emit_chain(v, bound)
        for op in g.ops:
            if _name(op) == "tile.reduce":
                nest.acc_of[op] = run.reduce_chunk(op, nest.acc_of.get(op))
            else:
                run.convert(op)
            bound.update(op.results)
            for r in op.results:
                if r in out_bufs:
                    run.store_chunk(r, out_bufs[r])
                    x = lw.env[r]
                    if isinstance(x, LoweredPointer):
                        ptr_meta[r] = (x.base, x.elem)
    finally:
        lw.chunk = None
    results = nest.close()
    lw.env.clear()
    lw.env.update(saved)
    for op in g.reduces:
        if op in run.column_accs:
            buf, e, cols = run.column_accs[op], str(tile.element_type(op.operands[0].type)), g.shape[1]
            x = lw.op(f"vector.load {buf}[{lw.index(0)}] : memref<{cols}x{e}>, {vtype((cols,), e)}")
            lw.env[op.results[0]] = LoweredValue(x, vtype((cols,), e))
            bufs[op.results[0]] = (buf, "value", None)
        else:
            lw.env[op.results[0]] = run.reduce_result(op, results[op])
    for r, buf in out_bufs.items():
        meta = ptr_meta.get(r)
        lw.env[r] = run.read_back(r, buf, meta)
        bufs[r] = (buf, "ptr" if meta else "value", LoweredPointer(meta[0], None, None, None, meta[1]) if meta else None)
    bound = set(lw.env)
    for r in esc_remat:
        _emit_whole(lw, r, bound)


def _emit_whole(lw: Lowering, v, bound: set) -> None:
    """Recompute a rematerializable tile at full width after the loop."""
    if v in bound or not _is_tile(v):
        return
    d = v.owner
    for o in d.operands:
        _emit_whole(lw, o, bound)
    lw._convert_op(d)
    bound.update(d.results)
