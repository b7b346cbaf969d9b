"""tile.dot in convert-tile-to-simt, and the matrix-fragment layout.

Dots whose element types the target's matrix unit multiplies (target.py:
f16 x f16 -> f32/f16 on CUDA's 16x16 WMMA fragments, f32/f16 on Metal's 8x8
simdgroup matrices), whose M, N, K are multiples of the fragment edge and
whose output fragments split evenly over the warps run on the matrix unit
through the upstream ops (`gpu.subgroup_mma_*`): a and b are staged in
workgroup memory (a `trans` feeding b is not moved: its source is staged and
read column-major), and each warp multiplies its fragments of the result. The
result stays in the *fragment layout* (`Fragments`: the warp's fragments in
registers), so `acc += tile_dot(a, b)` in a loop keeps the accumulator in
matrix registers: loop-carried values that are such sums are fragments
(`mma_loop_arg`), `+ - *` between fragment tiles work fragment by fragment
where the target has element-wise fragment ops, and any other use converts to
the blocked layout through workgroup memory (`to_blocked`).

Any other dot (f32 on CUDA, integers, other sizes) is computed element by
element from workgroup memory in the blocked layout.
"""
from __future__ import annotations

from mlir import ir

from alloy.passes.errors import LoweringError
from alloy.passes.simt.layout import WARP
from alloy.passes.simt.lowering import SimtLowering
from alloy.passes.simt.values import DeferredTranspose, Distributed, Fragments, byte_size, is_float

PAD_BYTES = 16  # padding per staged row, against shared-memory bank conflicts
ELEMENTWISE = {"arith.addf": "addf", "arith.subf": "subf", "arith.mulf": "mulf"}


def fragment_type(lw: SimtLowering, elem: str, role: str = "COp") -> str:
    """The MLIR type of one fragment of `elem` values in operand role AOp, BOp or COp."""
    e = lw.target.matrix.edge
    return f'!gpu.mma_matrix<{e}x{e}x{elem}, "{role}">'


def mma_ok(lw: SimtLowering, op) -> bool:
    """Whether this tile.dot runs on the matrix unit with its result in the fragment layout."""
    a, b, c = (v.type for v in op.operands)
    unit = lw.target.matrix
    if (str(a.element_type), str(b.element_type), str(c.element_type)) not in unit.types:
        return False
    (m, k), (_, n) = a.shape, b.shape
    e = unit.edge
    if m % e or n % e or k % e:
        return False
    return ((m // e) * (n // e)) % (lw.nt // WARP) == 0


def _is_mma_value(lw: SimtLowering, v: ir.Value, arg: ir.Value) -> bool:
    if v == arg:
        return True
    if isinstance(v, ir.BlockArgument) or isinstance(v.owner, ir.Block):
        return False
    op = v.owner
    name = op.operation.name
    if name == "tile.dot":
        return mma_ok(lw, op)
    if name in ELEMENTWISE and lw.target.matrix.elementwise:
        ops = list(op.operands)
        return all(_is_mma_value(lw, o, arg) for o in ops) and any(o != arg for o in ops)
    return False


def mma_loop_arg(lw: SimtLowering, for_op, i: int) -> bool:
    """Whether scf.for iter_arg i is carried in the accumulator layout (its yield is dot arithmetic)."""
    block = for_op.regions[0].blocks[0]
    arg = block.arguments[i + 1]
    t = arg.type
    if not isinstance(t, ir.RankedTensorType) or len(t.shape) != 2:
        return False
    yielded = list(block.operations)[-1].operands[i]
    return _is_mma_value(lw, yielded, arg)


def trans_for_dot(r: ir.Value) -> bool:
    """A tile.trans result used only as the b operand of dots."""
    uses = list(r.uses)
    return bool(uses) and all(u.owner.name == "tile.dot" and u.operand_number == 1 for u in uses)


# ------------------------------------------------------------ conversions
def fragments_of(lw: SimtLowering, shape) -> int:
    """Fragments each warp holds of a tile of `shape`."""
    e = lw.target.matrix.edge
    return (shape[0] // e) * (shape[1] // e) // (lw.nt // WARP)


def _frag_offset(lw: SimtLowering, r: int, n: int) -> tuple[str, str]:
    """(row, col) i32 of this warp's fragment of round r in an (.., n) tile."""
    e = lw.target.matrix.edge
    warp = lw.op(f"arith.divui {lw.tid()}, {lw.i32(WARP)} : i32")
    f = lw.op(f"arith.addi {warp}, {lw.i32(r * (lw.nt // WARP))} : i32")
    fm = lw.op(f"arith.muli {lw.op(f'arith.divui {f}, {lw.i32(n // e)} : i32')}, {lw.i32(e)} : i32")
    fn = lw.op(f"arith.muli {lw.op(f'arith.remui {f}, {lw.i32(n // e)} : i32')}, {lw.i32(e)} : i32")
    return fm, fn


def _index(lw: SimtLowering, row: str, ld: int, col: str) -> str:
    at = lw.op(f"arith.addi {lw.op(f'arith.muli {row}, {lw.i32(ld)} : i32')}, {col} : i32")
    return lw.op(f"arith.index_cast {at} : i32 to index")


def to_blocked(lw: SimtLowering, x: Fragments) -> Distributed:
    """Fragment layout -> blocked layout, through workgroup memory."""
    m, n = x.shape
    buf = lw.wg_buffer(x.elem, m * n, 4)
    for r, frag in enumerate(x.frags):
        fm, fn = _frag_offset(lw, r, n)
        lw.emit(f"gpu.subgroup_mma_store_matrix {frag}, {buf}[{_index(lw, fm, n, fn)}] "
                f"{{leadDimension = {n} : index}} : {fragment_type(lw, x.elem)}, !WG<{buf}>")
    lw.barrier()
    regs = [lw.wg_load(buf, i) for i in lw.flats((m, n))]
    lw.barrier()
    return Distributed(regs, x.elem, (m, n))


def as_fragments(lw: SimtLowering, v: ir.Value) -> Fragments:
    """The value of tile v in the fragment layout."""
    x = lw.val_any(v)
    if isinstance(x, Fragments):
        return x
    shape = tuple(v.type.shape)
    elem = str(v.type.element_type)
    owner = None if isinstance(v, ir.BlockArgument) or isinstance(v.owner, ir.Block) else v.owner
    if owner is not None and owner.operation.name == "arith.constant":
        c = lw.val(v).regs[0]
        frag = lw.op(f"gpu.subgroup_mma_constant_matrix {c} : {fragment_type(lw, elem)}")
        return Fragments([frag] * fragments_of(lw, shape), elem, shape)
    d = lw.val(v)
    m, n = shape
    buf = lw.wg_buffer(elem, m * n, 4)
    lay = lw.layout(shape)
    for k, r in enumerate(d.regs):
        lw.wg_store(buf, lw.flat(lay, k), r)
    lw.barrier()
    frags = []
    for r in range(fragments_of(lw, shape)):
        fm, fn = _frag_offset(lw, r, n)
        frags.append(lw.op(f"gpu.subgroup_mma_load_matrix {buf}[{_index(lw, fm, n, fn)}] "
                           f"{{leadDimension = {n} : index}} : !WG<{buf}> -> {fragment_type(lw, elem)}"))
    lw.barrier()
    return Fragments(frags, elem, shape)


def elementwise(lw: SimtLowering, op) -> bool:
    """`+ - *` on fragment-layout tiles, fragment by fragment; False when it does not apply."""
    vals = [lw.val_any(v) for v in op.operands]
    if op.operation.name not in ELEMENTWISE or not lw.target.matrix.elementwise or \
            not any(isinstance(x, Fragments) for x in vals):
        return False
    ms = [as_fragments(lw, v) for v in op.operands]
    kind = ELEMENTWISE[op.operation.name]
    t = fragment_type(lw, ms[0].elem)
    rhs = ms[1].frags
    if kind == "subf":  # a - b as a + b * -1: the NVVM lowering of the fragment ops has no subf
        minus_one = lw.op(f"gpu.subgroup_mma_constant_matrix {lw.const(-1.0, ms[0].elem)} : {t}")
        rhs = [lw.op(f"gpu.subgroup_mma_elementwise mulf {b}, {minus_one} : ({t}, {t}) -> {t}") for b in rhs]
        kind = "addf"
    frags = [lw.op(f"gpu.subgroup_mma_elementwise {kind} {a}, {b} : ({t}, {t}) -> {t}")
             for a, b in zip(ms[0].frags, rhs)]
    lw.env[op.results[0]] = Fragments(frags, ms[0].elem, ms[0].shape)
    return True


# -------------------------------------------------------------------- dot
def _stage(lw: SimtLowering, x: Distributed, elem: str, slot: int, ld: int | None = None) -> str:
    """Store a 2-D tile row-major with leading dimension `ld` (default: its width) into a
    workgroup buffer, in 16-byte vector stores where the layout's runs allow."""
    rows, cols = x.shape
    ld = ld or cols
    buf = lw.wg_buffer(elem, rows * ld, slot)
    lay = lw.layout(x.shape)
    regs = [r if x.elem == elem else lw.op(f"arith.{'extf' if is_float(elem) else 'extsi'} {r} : {x.elem} to {elem}")
            for r in x.regs]
    w = min(lay.vec, 16 // byte_size(elem)) if cols % lay.vec == 0 else 1
    for k0 in range(0, len(regs), w):
        e = lw.flat(lay, k0)
        if ld != cols:
            row = lw.op(f"arith.divui {e}, {lw.i32(cols)} : i32")
            e = lw.op(f"arith.addi {lw.op(f'arith.muli {row}, {lw.i32(ld)} : i32')}, "
                      f"{lw.op(f'arith.remui {e}, {lw.i32(cols)} : i32')} : i32")
        if w == 1:
            lw.wg_store(buf, e, regs[k0])
            continue
        vt = f"vector<{w}x{elem}>"
        v = lw.op(f"vector.from_elements {', '.join(regs[k0:k0 + w])} : {vt}")
        i = lw.op(f"arith.index_cast {e} : i32 to index")
        lw.emit(f"vector.store {v}, {buf}[{i}] {{alignment = {w * byte_size(elem)} : i64}} : !WG<{buf}>, {vt}")
    return buf


def lower_dot(lw: SimtLowering, op) -> None:
    a_v, b_v, c_v = op.operands
    (m, k), (k2, n), cshape = a_v.type.shape, b_v.type.shape, tuple(c_v.type.shape)
    if k != k2 or cshape != (m, n):
        raise LoweringError(f"dot shapes do not match: {m}x{k} @ {k2}x{n} + {cshape}", op)
    if mma_ok(lw, op):
        lw.env[op.results[0]] = _wmma(lw, op, m, n, k)
        return
    a, b, c = (lw.dist(v, op) for v in (a_v, b_v, c_v))
    if c.elem in ("f32", "f16", "bf16", "f64", "i32", "i64") and is_float(c.elem) == is_float(a.elem) == is_float(b.elem):
        lw.env[op.results[0]] = Distributed(_scalar(lw, a, b, c, m, n, k), c.elem, (m, n))
        return
    raise LoweringError(f"dot of {a.elem} x {b.elem} into a {c.elem} accumulator is not supported", op)


def _wmma(lw: SimtLowering, op, m: int, n: int, k: int) -> Fragments:
    a_v, b_v, c_v = op.operands
    acc = as_fragments(lw, c_v)
    a = lw.dist(a_v, op)
    bx = lw.val_any(b_v)
    lw.barrier()  # earlier readers of the staging buffers (a previous iteration) are done
    e = lw.target.matrix.edge
    t = acc.elem if lw.target.matrix.stage_as_accumulator else a.elem
    pad = PAD_BYTES // byte_size(t)
    ald = k + pad
    abuf = _stage(lw, a, t, 2, ald)
    if isinstance(bx, DeferredTranspose):  # b = trans(x): x (n x k) row-major is b column-major
        bld, trans = k + pad, " transpose,"
        bbuf = _stage(lw, bx.src, t, 3, bld)
    else:
        bld, trans = n + pad, ""
        bbuf = _stage(lw, lw.dist(b_v, op), t, 3, bld)
    lw.barrier()
    aop = fragment_type(lw, t, "AOp")
    bop = fragment_type(lw, t, "BOp")
    cop = fragment_type(lw, acc.elem)
    frags = []
    for r, frag in enumerate(acc.frags):
        fm, fn = _frag_offset(lw, r, n)
        for kk in range(0, k, e):
            ao = _index(lw, fm, ald, lw.i32(kk))
            if trans:
                bo = _index(lw, fn, bld, lw.i32(kk))
            else:
                bo = _index(lw, lw.i32(kk), bld, fn)
            fa = lw.op(f"gpu.subgroup_mma_load_matrix {abuf}[{ao}] {{leadDimension = {ald} : index}} : "
                       f"!WG<{abuf}> -> {aop}")
            fb = lw.op(f"gpu.subgroup_mma_load_matrix {bbuf}[{bo}] {{leadDimension = {bld} : index,{trans}}} : "
                       f"!WG<{bbuf}> -> {bop}".replace(",}", "}"))
            frag = lw.op(f"gpu.subgroup_mma_compute {fa}, {fb}, {frag} : {aop}, {bop} -> {cop}")
        frags.append(frag)
    return Fragments(frags, acc.elem, (m, n))


def _scalar(lw: SimtLowering, a: Distributed, b: Distributed, c: Distributed, m: int, n: int, k: int) -> list[str]:
    t = c.elem
    abuf = _stage(lw, a, t, 0)
    bbuf = _stage(lw, b, t, 1)
    lw.barrier()
    fl = is_float(t)
    out = []
    for idx, acc0 in zip(lw.flats((m, n)), c.regs):
        i, j = lw.unravel(idx, (m, n))
        arow = lw.op(f"arith.muli {i}, {lw.i32(k)} : i32")
        r, kk, acc = lw.new("r"), lw.new("k"), lw.new("acc")
        lw.emit(f'{r} = "scf.for"({lw.i32(0)}, {lw.i32(k)}, {lw.i32(1)}, {acc0}) ({{')
        lw.emit(f"^bb0({kk}: i32, {acc}: {t}):")
        lw.depth += 1
        x = lw.wg_load(abuf, lw.op(f"arith.addi {arow}, {kk} : i32"))
        y = lw.wg_load(bbuf, lw.op(f"arith.addi {lw.op(f'arith.muli {kk}, {lw.i32(n)} : i32')}, {j} : i32"))
        p = lw.op(f"arith.{'mulf' if fl else 'muli'} {x}, {y} : {t}")
        s = lw.op(f"arith.{'addf' if fl else 'addi'} {acc}, {p} : {t}")
        lw.emit(f'"scf.yield"({s}) : ({t}) -> ()')
        lw.depth -= 1
        lw.emit(f"}}) : (i32, i32, i32, {t}) -> {t}")
        out.append(r)
    lw.barrier()
    return out
