"""Strip-mining of tile code (part of convert-tile-to-vector).

A run of consecutive ops on tiles of one shape — 1-D tiles of N lanes, or 2-D
tiles of R x C — is lowered as one loop over chunks (W lanes of a 1-D tile,
one row of a 2-D tile) instead of op by op on whole tiles. Straight-line code
on whole tiles makes LLVM keep every intermediate tile live (spilling, since
loads must precede all stores; and slow to compile), while the loop keeps one
chunk of each value in registers.

Ops in a run: elementwise arith/math, splat, arange (1-D), broadcast from
[1, C] / [R, 1] (2-D), addptr, load, store, and sum/max/min reductions (1-D
to a scalar; 2-D along either axis). Inside the loop the usual handlers run
with tiles of the run's shape read as chunks (`Lowering.chunk`). A reduction
keeps its accumulator in the loop's iter_args. Tiles that cross the loop
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

from dataclasses import dataclass, field

from mlir import ir

from alloy.dialects import tile
from alloy.passes.vector.dot_fma import dot_operand_use, load_rows, scratch, store_rows
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.values import LoweredPointer, LoweredValue, is_float, vtype

LANES = 16  # chunk of a 1-D tile: one AVX-512 register of 32-bit lanes
MIN_CHUNKS = 4  # strip-mine 1-D tiles of at least this many chunks
MIN_ROWS, MIN_ELEMS = 2, 256  # and 2-D tiles of at least this size
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
    if name == "tile.load" and dot_operand_use(op.results[0]) is not None:
        return None  # staged straight into the dot's buffer instead
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
        self.c = self.off = self.c32 = None

    # --------------------------------------------------------- buffers
    def stage_in(self, v):
        """Store a whole tile defined before the loop into a buffer: (buffer, kind, meta)."""
        lw, x = self.lw, self.lw.env[v]
        if isinstance(x, LoweredPointer):
            if x.voff is None:
                return None, "ptr-scalar", x
            buf = scratch(lw, self.shape, "i64")
            self._store_whole(x.voff, buf, "i64")
            return buf, "ptr", x
        e = _mem_elem(v)
        buf = scratch(lw, self.shape, e)
        name = x.name
        if str(tile.element_type(v.type)) == "i1":
            name = lw.op(f"arith.extui {name} : {vtype(self.shape, 'i1')} to {vtype(self.shape, 'i8')}")
        self._store_whole(name, buf, e)
        return buf, "value", None

    def _store_whole(self, name, buf, e) -> None:
        if self.two_d:
            store_rows(self.lw, name, buf, self.shape, e)
        else:
            n = self.size
            self.lw.emit(f"vector.store {name}, {buf}[{self.lw.index(0)}] : memref<{n}x{e}>, {vtype((n,), e)}")

    def _load_whole(self, buf, e) -> str:
        if self.two_d:
            return load_rows(self.lw, buf, self.shape, e)
        n = self.size
        return self.lw.op(f"vector.load {buf}[{self.lw.index(0)}] : memref<{n}x{e}>, {vtype((n,), e)}")

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
        x = self._load_whole(buf, e)
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
        if s_shape == (1, cols):
            out = lw.extract(vec, (0,), s_shape, elem)
        else:
            flat = lw.shape_cast(vec, s_shape, (rows,), elem)
            s = lw.op(f"vector.extract {flat}[{self.c}] : {elem} from {vtype((rows,), elem)}")
            out = lw.splat(s, elem, self.chunk)
        lw.env[r] = LoweredPointer(x.base, x.soff, out, self.chunk, x.elem) if isinstance(x, LoweredPointer) else LoweredValue(out, vtype(self.chunk, elem))

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
        e = str(tile.element_type(op.operands[0].type))
        axis = ir.IntegerAttr(op.attributes["axis"]).value
        n = self.chunk[0] if not (self.two_d and axis == 1) else self.shape[0]
        t = vtype((n,), e)
        return self.lw.const(f"dense<{_identity(_kind(op), e)}>", t), t

    def reduce_chunk(self, op, acc: str) -> str:
        lw = self.lw
        e = str(tile.element_type(op.operands[0].type))
        x = lw.val(op.operands[0], op).name
        f = is_float(e)
        kind = _kind(op)
        if self.two_d and ir.IntegerAttr(op.attributes["axis"]).value == 1:
            s = lw.op(f"vector.reduction <{_COMBINE[kind][2 if f else 3]}>, {x} : {vtype(self.chunk, e)} into {e}")
            return lw.op(f"vector.insert {s}, {acc}[{self.c}] : {e} into {vtype((self.shape[0],), e)}")
        return lw.op(f"{_COMBINE[kind][0 if f else 1]} {acc}, {x} : {vtype(self.chunk, e)}")

    def reduce_result(self, op, acc: str) -> LoweredValue:
        e = str(tile.element_type(op.operands[0].type))
        if self.two_d:
            return LoweredValue(acc, vtype(tile.shape_of(op.results[0].type), e))
        red = _COMBINE[_kind(op)][2 if is_float(e) else 3]
        return LoweredValue(self.lw.op(f"vector.reduction <{red}>, {acc} : {vtype(self.chunk, e)} into {e}"), e)


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


def lower_group(lw: Lowering, g: Group) -> None:
    for op in g.pre:
        lw._convert_op(op)
    run = _Run(lw, g)
    bufs = lw.__dict__.setdefault("chunk_bufs", {})  # tile -> its buffer, from an earlier loop
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
    inits = [run.reduce_init(op) for op in g.reduces]
    vts = [t for _, t in inits]
    prefix, names = lw.results(len(inits))
    c = lw.new("c")
    accs = [lw.new("acc") for _ in inits]
    upper, step = (g.shape[0], 1) if run.two_d else (g.shape[0], g.chunk[0])
    lw.emit(f'{prefix}"scf.for"({", ".join([lw.index(0), lw.index(upper), lw.index(step)] + [i for i, _ in inits])}) ({{')
    lw.emit(f'^bb0({", ".join([f"{c}: index"] + [f"{a}: {t}" for a, t in zip(accs, vts)])}):')
    lw.depth += 1
    run.c = c
    run.off = lw.op(f"arith.muli {c}, {lw.index(g.shape[1])} : index") if run.two_d else c
    run.c32 = lw.op(f"arith.index_cast {c} : index to i32")
    lw.chunk = (g.shape, g.chunk)
    acc_of = dict(zip([op.results[0] for op in g.reduces], accs))
    ptr_meta: dict = {}
    try:
        bound = set()
        for v, (buf, kind, meta) in staged.items():
            lw.env[v] = run.load_chunk(buf, kind, meta, v)
            bound.add(v)
        for v in remat:
            run.emit_chain(v, bound)
        for op in g.ops:
            if _name(op) == "tile.reduce":
                acc_of[op.results[0]] = run.reduce_chunk(op, acc_of[op.results[0]])
            else:
                run.convert(op)
            bound.update(op.results)
            for r in op.results:
                if r in out_bufs:
                    run.store_chunk(r, out_bufs[r])
                    x = lw.env[r]
                    if isinstance(x, LoweredPointer):
                        ptr_meta[r] = (x.base, x.elem)
        lw.emit(f'"scf.yield"({", ".join(acc_of[op.results[0]] for op in g.reduces)}) : ({", ".join(vts)}) -> ()')
    finally:
        lw.chunk = None
        lw.depth -= 1
    # fully unrolled, the loop would turn back into the straight-line code it replaces
    lw.emit(f'}}) {{llvm.loop_annotation = {UNROLL}}} : ({", ".join(["index"] * 3 + vts)}) -> ({", ".join(vts)})')
    lw.env.clear()
    lw.env.update(saved)
    for op, name in zip(g.reduces, names):
        lw.env[op.results[0]] = run.reduce_result(op, name)
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
