"""Global-memory ops of convert-tile-to-simt: tile.load / store / atomic_rmw / atomic_cas.

A pointer tile is one `!llvm.ptr<1>` per register. When the contiguity
analysis proves a pointer tile has stride 1 along its last dimension (and
the layout's chunks of `vec` registers lie inside one row), each chunk is
one vector access (ld.global.v4 / st.global.v4) taken at run time when its
first address is aligned to the vector's size and the whole chunk is
unmasked; otherwise the chunk goes element by element, each under its mask.
Masked-off loads give `other` (else 0). Scalar stores and atomics are done
by thread 0 alone; a scalar atomic's old value reaches every thread through
workgroup memory. Replicated tiles (smaller than the block) store from their
owner threads only.
"""
from __future__ import annotations

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.simt.lowering import SimtLowering
from alloy.passes.simt.values import GLOBAL_PTR, Distributed, Uniform, byte_size, is_float, mem_elem, zero_text

_VEC_BYTES = 16


def _vec_ok(lw: SimtLowering, ptr_v, shape, me: str) -> int:
    """Registers per vector access of this pointer tile (1: element by element): the layout's
    runs when contiguous in memory, cut to 16 bytes."""
    lay = lw.layout(shape)
    width = min(lay.vec, _VEC_BYTES // byte_size(me))
    if width < 2 or shape[-1] % lay.vec:
        return 1
    strides = lw.axis.strides(ptr_v)
    return width if strides is not None and strides[-1] == 1 else 1


def all_of(lw: SimtLowering, conds: list[str]) -> str | None:
    conds = [c for c in conds if c is not None]
    if not conds:
        return None
    acc = conds[0]
    for c in conds[1:]:
        acc = lw.op(f"arith.andi {acc}, {c} : i1")
    return acc


def aligned(lw: SimtLowering, p: str, nbytes: int) -> str:
    i = lw.op(f"llvm.ptrtoint {p} : {GLOBAL_PTR} to i64")
    lo = lw.op(f"arith.andi {i}, {lw.const(nbytes - 1, 'i64')} : i64")
    return lw.op(f"arith.cmpi eq, {lo}, {lw.const(0, 'i64')} : i64")


def if_op(lw: SimtLowering, cond: str, types: list[str], then, other) -> list[str]:
    """scf.if cond -> types; then()/other() emit their branch and return the values to yield."""
    prefix, names = lw.results(len(types))
    tl = ", ".join(types)
    lw.emit(f'{prefix}"scf.if"({cond}) ({{')
    for i, branch in enumerate((then, other)):
        if i:
            lw.emit("}, {")
        lw.depth += 1
        vals = branch() if branch is not None else []
        lw.emit(f'"scf.yield"({", ".join(vals)}) : ({tl}) -> ()')
        lw.depth -= 1
    lw.emit(f"}}) : (i1) -> ({tl})")
    return names


def _load1(lw: SimtLowering, p: str, me: str, mask: str | None, other: str) -> str:
    if mask is None:
        return lw.op(f"llvm.load {p} : {GLOBAL_PTR} -> {me}")
    return if_op(lw, mask, [me], lambda: [lw.op(f"llvm.load {p} : {GLOBAL_PTR} -> {me}")], lambda: [other])[0]


# --------------------------------------------------------------------- load
def lower_load(lw: SimtLowering, op) -> None:
    pv, mv, ov = tile.load_operands(op)
    p = lw.val(pv, op)
    r = op.results[0]
    elem = lw.ty(r.type)
    me = mem_elem(elem)
    if isinstance(p, Uniform):
        m = lw.val(mv, op).name if mv is not None else None
        other = lw.to_mem(lw.val(ov, op).name, elem) if ov is not None else lw.const(zero_text(me), me)
        lw.env[r] = Uniform(lw.from_mem(_load1(lw, p.name, me, m, other), elem), elem)
        return
    shape = p.shape
    n = len(p.regs)
    masks = lw.regs_of(lw.val(mv, op), shape) if mv is not None else [None] * n
    if ov is not None:
        others = [lw.to_mem(x, elem) for x in lw.regs_of(lw.val(ov, op), shape)]
    else:
        others = [lw.const(zero_text(me), me)] * n
    vec = _vec_ok(lw, pv, shape, me)
    out: list[str] = []
    for k0 in range(0, n, vec):
        ks = range(k0, k0 + vec)
        if vec == 1:
            out.append(_load1(lw, p.regs[k0], me, masks[k0], others[k0]))
            continue
        vt = f"vector<{vec}x{me}>"

        def fast():
            v = lw.op(f"llvm.load {p.regs[k0]} {{alignment = {vec * byte_size(me)} : i64}} : {GLOBAL_PTR} -> {vt}")
            return [lw.op(f"vector.extract {v}[{i}] : {me} from {vt}") for i in range(vec)]

        def slow():
            return [_load1(lw, p.regs[k], me, masks[k], others[k]) for k in ks]

        cond = all_of(lw, [aligned(lw, p.regs[k0], vec * byte_size(me))] + [masks[k] for k in ks])
        out.extend(if_op(lw, cond, [me] * vec, fast, slow))
    lw.env[r] = Distributed([lw.from_mem(x, elem) for x in out], elem, shape)


# -------------------------------------------------------------------- store
def _store1(lw: SimtLowering, p: str, x: str, me: str, mask: str | None) -> None:
    if mask is None:
        lw.emit(f"llvm.store {x}, {p} : {me}, {GLOBAL_PTR}")
        return
    if_op(lw, mask, [], lambda: lw.emit(f"llvm.store {x}, {p} : {me}, {GLOBAL_PTR}") or [], None)


def _thread0(lw: SimtLowering) -> str | None:
    """i1: this is thread 0, which does a tile kernel's scalar stores and atomics (None in a SIMT kernel:
    there every thread does its own)."""
    if lw.simt:
        return None
    return lw.op(f"arith.cmpi eq, {lw.tid()}, {lw.i32(0)} : i32")


def lower_store(lw: SimtLowering, op) -> None:
    ops = list(op.operands)
    p = lw.val(ops[0], op)
    elem = lw.ty(ops[1].type)
    me = mem_elem(elem)
    if isinstance(p, Uniform):
        v = lw.val(ops[1], op)
        if isinstance(v, Distributed):
            raise LoweringError("storing a tile through a scalar pointer", op)
        m = lw.val(ops[2], op).name if len(ops) > 2 else None
        _store1(lw, p.name, lw.to_mem(v.name, elem), me, all_of(lw, [m, _thread0(lw)]))
        return
    shape = p.shape
    n = len(p.regs)
    values = [lw.to_mem(x, elem) for x in lw.regs_of(lw.val(ops[1], op), shape)]
    masks = lw.regs_of(lw.val(ops[2], op), shape) if len(ops) > 2 else [None] * n
    own = lw.owner(lw.layout(shape))
    if own is not None:
        masks = [all_of(lw, [m, own]) for m in masks]
    vec = _vec_ok(lw, ops[0], shape, me)
    for k0 in range(0, n, vec):
        ks = range(k0, k0 + vec)
        if vec == 1:
            _store1(lw, p.regs[k0], values[k0], me, masks[k0])
            continue
        vt = f"vector<{vec}x{me}>"

        def fast():
            v = lw.op(f"llvm.mlir.poison : {vt}")
            for i, k in enumerate(ks):
                v = lw.op(f"vector.insert {values[k]}, {v}[{i}] : {me} into {vt}")
            lw.emit(f"llvm.store {v}, {p.regs[k0]} {{alignment = {vec * byte_size(me)} : i64}} : {vt}, {GLOBAL_PTR}")
            return []

        def slow():
            for k in ks:
                _store1(lw, p.regs[k], values[k], me, masks[k])
            return []

        cond = all_of(lw, [aligned(lw, p.regs[k0], vec * byte_size(me))] + [masks[k] for k in ks])
        if_op(lw, cond, [], fast, slow)


# ------------------------------------------------------------------ atomics
_RMW = {("add", True): "fadd", ("add", False): "add", ("max", True): "fmax", ("max", False): "max",
        ("min", True): "fmin", ("min", False): "min", ("xchg", True): "xchg", ("xchg", False): "xchg"}


def _lanes(lw: SimtLowering, op, p, operands, mask_v, elem: str, body) -> None:
    """Run body(ptr, [lane values]) -> old value on each owned, unmasked lane; bind the result."""
    r = op.results[0]
    zero = lw.const(zero_text(elem), elem)
    if isinstance(p, Uniform):
        m = lw.val(mask_v, op).name if mask_v is not None else None
        cond = all_of(lw, [m, _thread0(lw)])
        if lw.simt:  # every thread's own atomic, its own old value
            lw.env[r] = Uniform(body(p.name, [v.name for v in operands]) if cond is None else if_op(
                lw, cond, [elem], lambda: [body(p.name, [v.name for v in operands])], lambda: [zero])[0], elem)
            return
        old = if_op(lw, cond, [elem], lambda: [body(p.name, [v.name for v in operands])], lambda: [zero])[0]
        buf = lw.wg_buffer(mem_elem(elem), 1)
        if_op(lw, _thread0(lw), [], lambda: lw.wg_store(buf, lw.i32(0), lw.to_mem(old, elem)) or [],
            None)
        lw.barrier()
        out = lw.from_mem(lw.wg_load(buf, lw.i32(0)), elem)
        lw.barrier()
        lw.env[r] = Uniform(out, elem)
        return
    shape = p.shape
    n = len(p.regs)
    vals = [lw.regs_of(v, shape) for v in operands]
    masks = lw.regs_of(lw.val(mask_v, op), shape) if mask_v is not None else [None] * n
    own = lw.owner(lw.layout(shape))
    out = []
    for k in range(n):
        cond = all_of(lw, [masks[k], own])
        lane = [v[k] for v in vals]
        if cond is None:
            out.append(body(p.regs[k], lane))
        else:
            out.append(if_op(lw, cond, [elem], lambda: [body(p.regs[k], lane)], lambda: [zero])[0])
    lw.env[r] = Distributed(out, elem, shape)


def lower_atomic_rmw(lw: SimtLowering, op) -> None:
    ops = list(op.operands)
    p = lw.val(ops[0], op)
    elem = lw.ty(ops[1].type)
    kind = str(op.attributes["kind"]).strip('"')
    if elem == "i1" or (kind, is_float(elem)) not in _RMW:
        raise LoweringError(f"atomic {kind} on {elem} is not supported", op)
    rmw = _RMW[(kind, is_float(elem))]

    def body(ptr, lane):
        return lw.op(f"llvm.atomicrmw {rmw} {ptr}, {lane[0]} acq_rel : {GLOBAL_PTR}, {elem}")

    _lanes(lw, op, p, [lw.val(ops[1], op)], ops[2] if len(ops) > 2 else None, elem, body)


def lower_atomic_cas(lw: SimtLowering, op) -> None:
    ops = list(op.operands)
    p = lw.val(ops[0], op)
    elem = lw.ty(ops[2].type)
    if elem == "i1":
        raise LoweringError("atomic_cas on i1 is not supported", op)
    ibits = {"f16": "i16", "bf16": "i16", "f32": "i32", "f64": "i64"}.get(elem, elem)

    def body(ptr, lane):
        return lw.cmpxchg(ptr, GLOBAL_PTR, lane[0], lane[1], elem, ibits)

    _lanes(lw, op, p, [lw.val(ops[1], op), lw.val(ops[2], op)], None, elem, body)

