"""Lowering of tile.dot (part of convert-tile-to-vector): a register-blocked vector.fma micro-kernel.

acc (M x N) += a (M x K) @ b (K x N) runs on scratch buffers on the stack:
a and b are stored row by row, and for each block of MR rows x NR columns the
accumulator rows are loaded into registers, updated with
`vector.fma(broadcast(a[i, k]), b[k, j0:j0+NR], acc)` for every k (unrolled),
and stored back; MR x NR is sized to the host's SIMD registers. f16/bf16
inputs are extended to the f32 accumulator; integer dots use muli/addi.

An operand loaded only for the dot goes from its row loads straight into the
scratch buffer (`OperandStager`); b = trans(load(...)), the transposed
right-hand side of `tile_dot(a, b, transpose_rhs=True)`, is transposed on the
way in by square blocks of one SIMD register's lanes (4 to 16) with a network
of two-input shuffles.

When the accumulator is carried by an scf.for (acc = dot(a, b, acc) yielded
straight back), it lives in its scratch buffer for the whole loop instead of
being copied in and out on every iteration (see `memory_accumulators`).
"""
from __future__ import annotations

from dataclasses import dataclass

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.values import LoweredValue, is_float, vtype

MAX_UNROLL_K = 64
LOOPED_OPERAND = 4096  # dot operand loads of this many elements run strip-mined (see stripmine.py)


@dataclass
class MemTile:
    """A tile kept in a stack buffer (memref<M*N x T>, row-major) instead of SSA registers."""

    buf: str
    shape: tuple
    elem: str


def scratch(lw: Lowering, shape, elem: str, role: str | None = None) -> str:
    """A row-major stack buffer allocated once at function entry; with a `role`, the one buffer of that
    role, shape and type that every user shares (users whose contents never outlive their own op)."""
    n = 1
    for d in shape:
        n *= d
    key = (role, n, elem)
    if role is not None and key in lw.shared_scratch:
        return lw.shared_scratch[key]
    name = lw.new("buf")
    if role is not None:
        lw.shared_scratch[key] = name
    lw.entry_lines.append(f"  {name} = memref.alloca() {{alignment = 64 : i64}} : memref<{n}x{elem}>")
    return name


def store_rows(lw: Lowering, x: str, buf: str, shape, elem: str) -> None:
    m, n = shape
    for i in range(m):
        r = lw.extract(x, (i,), shape, elem)
        lw.emit(f"vector.store {r}, {buf}[{lw.index(i * n)}] : memref<{m * n}x{elem}>, {vtype((n,), elem)}")


def load_rows(lw: Lowering, buf: str, shape, elem: str) -> str:
    m, n = shape
    out = lw.op(f"ub.poison : {vtype(shape, elem)}")
    for i in range(m):
        r = lw.op(f"vector.load {buf}[{lw.index(i * n)}] : memref<{m * n}x{elem}>, {vtype((n,), elem)}")
        out = lw.insert(r, out, (i,), shape, elem)
    return out


def store_tile(lw: Lowering, x: str, buf: str, shape, elem: str) -> None:
    """A 1-D or 2-D tile x stored whole into the row-major buffer buf (2-D: row by row)."""
    if len(shape) == 2:
        store_rows(lw, x, buf, shape, elem)
        return
    n = shape[0]
    lw.emit(f"vector.store {x}, {buf}[{lw.index(0)}] : memref<{n}x{elem}>, {vtype((n,), elem)}")


def load_tile(lw: Lowering, buf: str, shape, elem: str) -> str:
    """The 1-D or 2-D tile held row-major in buf, loaded whole."""
    if len(shape) == 2:
        return load_rows(lw, buf, shape, elem)
    n = shape[0]
    return lw.op(f"vector.load {buf}[{lw.index(0)}] : memref<{n}x{elem}>, {vtype((n,), elem)}")


@dataclass
class DotOperand:
    """A dot input already staged (extended, transposed if needed) in its row-major scratch buffer."""

    buf: str
    shape: tuple  # as the dot sees it: (M, K) for a, (K, N) for b
    elem: str


def _bytes(elem: str) -> int:
    return int(elem[1:]) // 8 if elem[1:].isdigit() else 4


def _single_use(v: ir.Value):
    uses = list(v.uses)
    return uses[0] if len(uses) == 1 else None


def dot_operand_use(v: ir.Value):
    """("a" | "b" | "bt", dot op) when the 2-D tile v only feeds a dot (bt: through a tile.trans)."""
    u = _single_use(v)
    if u is None or len(tile.shape_of(v.type) or ()) != 2:
        return None
    owner = u.owner
    if owner.operation.name == "tile.dot" and u.operand_number in (0, 1):
        return ("a" if u.operand_number == 0 else "b"), owner
    if owner.operation.name == "tile.trans":
        u2 = _single_use(owner.results[0])
        if u2 is not None and u2.owner.operation.name == "tile.dot" and u2.operand_number == 1:
            return "bt", u2.owner
    return None


class OperandStager:
    """Receives the rows of a loaded tile and writes them into a dot's scratch buffer."""

    def __init__(self, lw: Lowering, role: str, dot, shape, src_elem: str) -> None:
        self.lw, self.role, self.src_elem = lw, role, src_elem
        self.elem = str(tile.element_type(dot.operands[2].type))
        rows, cols = shape
        self.cols = cols
        self.dot_shape = (cols, rows) if role == "bt" else (rows, cols)
        self.buf = scratch(lw, self.dot_shape, self.elem)
        self.pending: list[tuple[int, str]] = []
        self.block = min(16, max(4, lw.target.lanes(_bytes(self.elem))))  # transposed in block x block pieces

    def row(self, i: int, x: str) -> None:
        lw, n = self.lw, self.cols
        if self.src_elem != self.elem:
            x = _extend(lw, x, (n,), self.src_elem, self.elem, None)
        if self.role != "bt":
            lw.emit(f"vector.store {x}, {self.buf}[{lw.index(i * n)}] : {self._mt()}, {vtype((n,), self.elem)}")
            return
        self.pending.append((i, x))
        if len(self.pending) == self.block:
            self._flush()

    def wants_buffer(self, count: int) -> bool:
        """Whether `count` masked rows should come through rows_in_buffer (in loops) rather than one by one:
        a b^T of LOOPED_OPERAND elements or more that no strip-mined loop loaded (e.g. through a pointer
        carried by a loop); unrolled, its transposition would be thousands of shuffles."""
        return self.role == "bt" and count * self.cols >= LOOPED_OPERAND and self.cols % self.block == 0

    def rows_in_buffer(self, rbuf: str, count: int, bits: str | None = None) -> None:
        """All `count` rows at once, from the row-major stack buffer rbuf (as `bits` integers when given),
        in loops whose code is not repeated for every row: b^T is transposed one group of `block` rows per
        iteration, the rows of a or b are extended one per iteration."""
        lw, n, e, blk = self.lw, self.cols, self.elem, self.block
        rt = f"memref<{count * n}x{bits or self.src_elem}>"
        groups = count // blk if self.role == "bt" and n % blk == 0 else 0
        if groups > 1:
            ndim = self.dot_shape[1]
            g = lw.new("g")
            lw.emit(f'"scf.for"({lw.index(0)}, {lw.index(groups * blk)}, {lw.index(blk)}) ({{')
            lw.emit(f"^bb0({g}: index):")
            lw.depth += 1
            base = lw.op(f"arith.muli {g}, {lw.index(n)} : index")
            for k0 in range(0, n, blk):
                rows = []
                for t in range(blk):
                    x = self._load(rbuf, rt, lw.op(f"arith.addi {base}, {lw.index(t * n + k0)} : index"), blk, bits)
                    rows.append(_extend(lw, x, (blk,), self.src_elem, e, None))
                for kk, col in enumerate(transpose_square(lw, rows, e)):
                    at = lw.op(f"arith.addi {g}, {lw.index((k0 + kk) * ndim)} : index")
                    lw.emit(f"vector.store {col}, {self.buf}[{at}] : {self._mt()}, {vtype((blk,), e)}")
            lw.emit('"scf.yield"() : () -> ()')
            lw.depth -= 1
            lw.emit("}) : (index, index, index) -> ()")
        first = groups * blk if groups > 1 else 0
        if self.role != "bt" and count > 1:  # a or b: row by row in a loop, extended on the way
            i = lw.new("row")
            lw.emit(f'"scf.for"({lw.index(0)}, {lw.index(count * n)}, {lw.index(n)}) ({{')
            lw.emit(f"^bb0({i}: index):")
            lw.depth += 1
            x = _extend(lw, self._load(rbuf, rt, i, n, bits), (n,), self.src_elem, e, None)
            lw.emit(f"vector.store {x}, {self.buf}[{i}] : {self._mt()}, {vtype((n,), e)}")
            lw.emit('"scf.yield"() : () -> ()')
            lw.depth -= 1
            lw.emit("}) : (index, index, index) -> ()")
            first = count
        for i in range(first, count):
            self.row(i, self._load(rbuf, rt, lw.index(i * n), n, bits))

    def _load(self, rbuf: str, rt: str, at: str, width: int, bits: str | None) -> str:
        """`width` elements of rbuf at `at`, as the operand's element type (from their bits when given)."""
        x = self.lw.op(f"vector.load {rbuf}[{at}] : {rt}, {vtype((width,), bits or self.src_elem)}")
        if bits is None:
            return x
        return self.lw.op(f"arith.bitcast {x} : {vtype((width,), bits)} to {vtype((width,), self.src_elem)}")

    def _mt(self) -> str:
        return f"memref<{self.dot_shape[0] * self.dot_shape[1]}x{self.elem}>"

    def _flush(self) -> None:
        """Transpose the pending rows of b^T (r rows x K) in block-wide column chunks into rows of b."""
        lw, rows, e = self.lw, self.pending, self.elem
        if not rows:
            return
        r, kdim, ndim = len(rows), self.cols, self.dot_shape[1]
        j0 = rows[0][0]
        step = self.block if kdim % self.block == 0 else kdim
        for k0 in range(0, kdim, step):
            parts = [x if step == kdim else lw.op(
                f"vector.extract_strided_slice {x} {{offsets = [{k0}], sizes = [{step}], strides = [1]}} : "
                f"{vtype((kdim,), e)} to {vtype((step,), e)}") for _, x in rows]
            if r == step and r & (r - 1) == 0:
                cols = transpose_square(lw, parts, e)
            else:
                blk = lw.op(f"ub.poison : {vtype((r, step), e)}")
                for t, part in enumerate(parts):
                    blk = lw.insert(part, blk, (t,), (r, step), e)
                tr = lw.op(f"vector.transpose {blk}, [1, 0] : {vtype((r, step), e)} to {vtype((step, r), e)}")
                cols = [lw.extract(tr, (kk,), (step, r), e) for kk in range(step)]
            for kk, col in enumerate(cols):
                lw.emit(f"vector.store {col}, {self.buf}[{lw.index((k0 + kk) * ndim + j0)}] : {self._mt()}, "
                        f"{vtype((r,), e)}")
        self.pending = []

    def finish(self) -> DotOperand:
        self._flush()
        return DotOperand(self.buf, self.dot_shape, self.elem)


def transpose_square(lw: Lowering, rows: list[str], elem: str) -> list[str]:
    """Transpose n rows of n elements (n a power of two) with n*log2(n) two-input shuffles.

    Stage d swaps bit d of the row index with bit d of the column index: (i, j) and
    (i^d, j^d) trade places where those bits differ.
    """
    n = len(rows)
    vt = vtype((n,), elem)
    rows = list(rows)
    d = 1
    while d < n:
        lo = [j if not j & d else n + (j ^ d) for j in range(n)]
        hi = [j ^ d if not j & d else n + j for j in range(n)]
        nxt = list(rows)
        for i in range(n):
            if i & d:
                continue
            a, b = rows[i], rows[i ^ d]
            nxt[i] = lw.op(f"vector.shuffle {a}, {b} [{', '.join(map(str, lo))}] : {vt}, {vt}")
            nxt[i ^ d] = lw.op(f"vector.shuffle {a}, {b} [{', '.join(map(str, hi))}] : {vt}, {vt}")
        rows = nxt
        d *= 2
    return rows


def memory_accumulators(for_op) -> dict[int, ir.Value]:
    """iter_arg positions of an scf.for whose value only feeds a tile.dot accumulator that is yielded back."""
    block = for_op.regions[0].blocks[0]
    ops = list(block.operations)
    yield_op = ops[-1]
    out = {}
    for i, arg in enumerate(list(block.arguments)[1:]):
        if not isinstance(arg.type, ir.RankedTensorType) or len(arg.type.shape) != 2:
            continue
        uses = list(arg.uses)
        if len(uses) != 1 or uses[0].operand_number != 2:
            continue
        dot = uses[0].owner
        if dot.operation.name != "tile.dot" or dot.operation.parent.name != "scf.for" or dot.operation.block != block:
            continue
        r_uses = list(dot.results[0].uses)
        if len(r_uses) == 1 and r_uses[0].owner == yield_op.operation and r_uses[0].operand_number == i:
            out[i] = arg
    return out


def operand_from_buffer(lw: Lowering, role: str, dot, shape, elem: str, buf: str) -> DotOperand:
    """A dot operand (role a, b, or bt: shape is b^T's) held row-major in buf: used in place when it has the
    accumulator's type and needs no transpose, else staged from it in loops."""
    acc_elem = str(tile.element_type(dot.operands[2].type))
    if role != "bt" and elem == acc_elem:
        return DotOperand(buf, tuple(shape), elem)
    stager = OperandStager(lw, role, dot, shape, elem)
    stager.rows_in_buffer(buf, shape[0])
    return stager.finish()


def _extend(lw: Lowering, x: str, shape, src: str, dst: str, op) -> str:
    if src == dst:
        return x
    if is_float(src) and is_float(dst):
        return lw.op(f"arith.extf {x} : {vtype(shape, src)} to {vtype(shape, dst)}")
    if not is_float(src) and not is_float(dst):
        return lw.op(f"arith.extsi {x} : {vtype(shape, src)} to {vtype(shape, dst)}")
    raise LoweringError(f"dot of {src} inputs into a {dst} accumulator is not supported", op)


def lower_dot(lw: Lowering, op) -> None:
    a_v, b_v, c_v = op.operands
    (m, k), (k2, n), cshape = tile.shape_of(a_v.type), tile.shape_of(b_v.type), tile.shape_of(c_v.type)
    if k != k2 or tuple(cshape) != (m, n):
        raise LoweringError(f"dot shapes do not match: {m}x{k} @ {k2}x{n} + {cshape}", op)
    ea, eb, ec = (str(tile.element_type(v.type)) for v in (a_v, b_v, c_v))
    acc = lw.env.get(c_v)
    if isinstance(acc, MemTile):
        cbuf = acc.buf
    else:
        cbuf = scratch(lw, (m, n), ec)
        store_rows(lw, lw.val(c_v, op).name, cbuf, (m, n), ec)
    staged = []
    for role, v, shape, e in (("a", a_v, (m, k), ea), ("b", b_v, (k, n), eb)):
        x = lw.env.get(v)
        if v in lw.chunk_bufs and lw.chunk_bufs[v][1] == "value":  # left in a buffer by a strip-mined loop
            x = operand_from_buffer(lw, role, op, shape, e, lw.chunk_bufs[v][0])
        if isinstance(x, DotOperand):
            staged.append(x.buf)
            continue
        buf = scratch(lw, shape, ec)
        store_rows(lw, _extend(lw, lw.val(v, op).name, shape, e, ec, op), buf, shape, ec)
        staged.append(buf)
    abuf, bbuf = staged
    _micro_kernel(lw, abuf, bbuf, cbuf, m, n, k, ec)
    if isinstance(acc, MemTile):
        lw.env[op.results[0]] = acc
    else:
        lw.env[op.results[0]] = LoweredValue(load_rows(lw, cbuf, (m, n), ec), vtype((m, n), ec))


def _blocking(lw: Lowering, m: int, n: int, elem: str) -> tuple[int, int]:
    """(rows MR, columns NR) of the micro-tile: up to 3/4 of the SIMD registers accumulate, the rest hold
    rows of b and the broadcast element of a. MR divides M where a divisor keeps at least half those
    rows: a remainder block would be a second copy of the unrolled micro-kernel."""
    width, acc_regs = lw.target.vector_bytes, lw.target.vector_registers * 3 // 4
    lanes = max(1, width // _bytes(elem))
    nr = n if n <= 4 * lanes else next(d for d in range(4 * lanes, 0, -1) if n % d == 0)
    vecs = max(1, -(-nr // lanes))
    most = max(1, min(m, acc_regs // vecs))
    divisor = next(d for d in range(most, 0, -1) if m % d == 0)
    return (divisor if 2 * divisor >= most else most), nr


def _micro_kernel(lw: Lowering, abuf, bbuf, cbuf, m, n, k, elem) -> None:
    mr, nr = _blocking(lw, m, n, elem)
    full = m - m % mr
    if full:
        _row_blocks(lw, abuf, bbuf, cbuf, m, n, k, elem, mr, nr, 0, full)
    if m % mr:
        _row_blocks(lw, abuf, bbuf, cbuf, m, n, k, elem, m % mr, nr, full, m)


def _for(lw: Lowering, lb: str, ub: str, step: str, iter_inits=(), iter_type: str = ""):
    """Open an index scf.for; returns (iv, iter arg names, result names); close with _end_for."""
    prefix, names = lw.results(len(iter_inits))
    iv = lw.new("i")
    args = [lw.new("it") for _ in iter_inits]
    lw.emit(f'{prefix}"scf.for"({", ".join([lb, ub, step] + list(iter_inits))}) ({{')
    lw.emit(f'^bb0({", ".join([f"{iv}: index"] + [f"{a}: {iter_type}" for a in args])}):')
    lw.depth += 1
    return iv, args, names


def _end_for(lw: Lowering, yields=(), iter_type: str = "") -> None:
    n = len(yields)
    lw.emit(f'"scf.yield"({", ".join(yields)}) : ({", ".join([iter_type] * n)}) -> ()')
    lw.depth -= 1
    lw.emit(f'}}) : ({", ".join(["index"] * 3 + [iter_type] * n)}) -> ({", ".join([iter_type] * n)})')


def _row_blocks(lw, abuf, bbuf, cbuf, m, n, k, elem, mr, nr, lo, hi) -> None:
    """Rows lo..hi of the accumulator in blocks of mr rows x nr columns; each row of a block is held as
    register-wide vectors (LLVM meets no vector it must split)."""
    f = is_float(elem)
    lanes = lw.target.lanes(_bytes(elem))
    width = lanes if nr % lanes == 0 else nr
    parts = [lw.index(q * width) for q in range(nr // width)]
    vt = vtype((width,), elem)
    at, bt, ct = (f"memref<{s}x{elem}>" for s in (m * k, k * n, m * n))
    i0, _, _ = _for(lw, lw.index(lo), lw.index(hi), lw.index(mr))
    if nr == n:
        j0 = lw.index(0)
    else:
        j0, _, _ = _for(lw, lw.index(0), lw.index(n), lw.index(nr))
    rows = [lw.op(f"arith.addi {i0}, {lw.index(r)} : index") for r in range(mr)]
    c_off = [lw.op(f"arith.addi {lw.op(f'arith.muli {r}, {lw.index(n)} : index')}, {j0} : index") for r in rows]
    a_off = [lw.op(f"arith.muli {r}, {lw.index(k)} : index") for r in rows]
    c_at = [lw.op(f"arith.addi {o}, {q} : index") for o in c_off for q in parts]
    accs = [lw.op(f"vector.load {cbuf}[{o}] : {ct}, {vt}") for o in c_at]
    ku = next(d for d in range(min(k, MAX_UNROLL_K), 0, -1) if k % d == 0)
    looped = ku != k
    if looped:
        k0, args, res = _for(lw, lw.index(0), lw.index(k), lw.index(ku), accs, vt)
        accs = args
    for kk in range(ku):
        kidx = lw.index(kk) if not looped else lw.op(f"arith.addi {k0}, {lw.index(kk)} : index")
        boff = lw.op(f"arith.addi {lw.op(f'arith.muli {kidx}, {lw.index(n)} : index')}, {j0} : index")
        brow = [lw.op(f"vector.load {bbuf}[{lw.op(f'arith.addi {boff}, {q} : index')}] : {bt}, {vt}") for q in parts]
        for r in range(mr):
            s = lw.op(f"memref.load {abuf}[{lw.op(f'arith.addi {a_off[r]}, {kidx} : index')}] : {at}")
            sb = lw.splat(s, elem, (width,))
            for q, b in enumerate(brow):
                a = r * len(parts) + q
                if f:
                    accs[a] = lw.op(f"vector.fma {sb}, {b}, {accs[a]} : {vt}")
                else:
                    accs[a] = lw.op(f"arith.addi {accs[a]}, {lw.op(f'arith.muli {sb}, {b} : {vt}')} : {vt}")
    if looped:
        _end_for(lw, accs, vt)
        accs = res
    for o, acc in zip(c_at, accs):
        lw.emit(f"vector.store {acc}, {cbuf}[{o}] : {ct}, {vt}")
    if nr != n:
        _end_for(lw)
    _end_for(lw)
