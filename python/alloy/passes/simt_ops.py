"""Op handlers of convert-tile-to-simt: index ops, shapes, pointers, elementwise math, scf.

Each handler takes (SimtLowering, op) and binds the op's results in `lw.env`
(see simt_lower.py for the value model).
"""
from __future__ import annotations

from mlir import ir

from alloy.passes.errors import LoweringError
from alloy.passes.simt_lower import D, GPTR, M, SimtLowering, TransOf, U, _constant_scalar, gep, pointee, scalar_op


def generic(lw: SimtLowering, op) -> None:
    """Elementwise arith/math op: one scalar op per register (or one for scalars)."""
    if op.operation.name == "arith.constant":
        return constant(lw, op)
    if len(op.operation.regions):
        raise LoweringError("op with regions not supported by the CUDA lowering", op)
    if len(op.results) != 1:
        raise LoweringError("elementwise ops with several results are not supported by the CUDA lowering", op)
    from alloy.passes.simt_dot import elementwise

    if elementwise(lw, op):
        return
    r = op.results[0]
    vals = [lw.val(v, op) for v in op.operands]
    if not isinstance(r.type, ir.RankedTensorType):
        lw.env[r] = U(scalar_op(lw, op, [v.name for v in vals]), lw.ty(r.type))
        return
    shape = tuple(r.type.shape)
    regs = [lw.regs_of(v, shape) for v in vals]
    lw.env[r] = D([scalar_op(lw, op, list(ops)) for ops in zip(*regs)], lw.ty(r.type), shape)


def constant(lw: SimtLowering, op) -> None:
    r = op.results[0]
    c = _constant_scalar(lw, op)
    if isinstance(r.type, ir.RankedTensorType):
        shape = tuple(r.type.shape)
        lw.env[r] = D([c] * lw.layout(shape).regs, lw.ty(r.type), shape)
    else:
        lw.env[r] = U(c, lw.ty(r.type))


def program_id(lw: SimtLowering, op) -> None:
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    if axis not in (0, 1, 2):
        raise LoweringError(f"axis {axis} out of range 0..2", op)
    what = "gpu.block_id" if op.operation.name == "tile.program_id" else "gpu.grid_dim"
    i = lw.pro_op(f"{what} {'xyz'[axis]}")
    lw.env[op.results[0]] = U(lw.pro_op(f"arith.index_cast {i} : index to i32", "pid"), "i32")


def arange(lw: SimtLowering, op) -> None:
    r = op.results[0]
    shape = tuple(r.type.shape)
    lw.env[r] = D(lw.remat(r, lw.flats(shape)), "i32", shape)


def splat(lw: SimtLowering, op) -> None:
    r = op.results[0]
    shape = tuple(r.type.shape)
    x = lw.val(op.operands[0], op)
    lw.env[r] = D([x.name] * lw.layout(shape).regs, x.type, shape)


def reshape_like(lw: SimtLowering, op) -> None:
    """expand_dims / reshape keep the flat order (free); a broadcast whose source elements each
    thread already holds takes registers (simt_regmap); else broadcast / trans recompute or exchange."""
    name = op.operation.name
    r = op.results[0]
    shape = tuple(r.type.shape)
    src_v = op.operands[0]
    src = lw.dist(src_v, op)
    if name == "tile.trans" and src.elem in ("f16", "f32"):
        from alloy.passes.simt_dot import mma_ok, trans_for_dot

        if trans_for_dot(r) and all(mma_ok(lw, u.owner) for u in r.uses):
            lw.env[r] = TransOf(src)
            return
    if name in ("tile.expand_dims", "tile.reshape"):
        lw.env[r] = D(src.regs, src.elem, shape)
        return
    if name == "tile.trans" and len(shape) != 2:
        raise LoweringError(f"trans needs a 2-D tile, got shape {shape}", op)
    if name == "tile.broadcast":
        from alloy.passes.simt_regmap import broadcast_regs

        regs = broadcast_regs(lw, src.regs, tuple(src_v.type.shape), shape)
        if regs is not None:
            lw.env[r] = D(regs, src.elem, shape)
            return
    idxs = lw.flats(shape)
    if lw.can_remat(src_v):
        lw.env[r] = D(lw.remat(r, idxs), src.elem, shape)
        return
    src_shape = tuple(src_v.type.shape)
    if name == "tile.broadcast":
        mapped = [lw.broadcast_index(i, shape, src_shape) for i in idxs]
    else:
        mapped = [lw.trans_index(i, shape) for i in idxs]
    lw.env[r] = D(lw.exchange(src, mapped), src.elem, shape)


def addptr(lw: SimtLowering, op) -> None:
    r = op.results[0]
    p, o = (lw.val(v, op) for v in op.operands)
    elem = pointee(r.type)
    ot = lw.ty(op.operands[1].type)
    if not isinstance(r.type, ir.RankedTensorType):
        lw.env[r] = U(gep(lw, p.name, o.name, ot, elem), GPTR)
        return
    shape = tuple(r.type.shape)
    regs = [gep(lw, a, b, ot, elem) for a, b in zip(lw.regs_of(p, shape), lw.regs_of(o, shape))]
    lw.env[r] = D(regs, GPTR, shape)


# ------------------------------------------------------------------ scf
def _flat_types(lw: SimtLowering, t: ir.Type) -> list[str]:
    e = lw.ty(t)
    if isinstance(t, ir.RankedTensorType):
        return [e] * lw.layout(t.shape).regs
    return [e]


def _flatten(lw: SimtLowering, v: ir.Value) -> list[str]:
    x = lw.val(v)
    if isinstance(x, D):
        return list(x.regs)
    return [x.name]


def _bind(lw: SimtLowering, values, names: list[str]) -> None:
    for v in values:
        t = v.type
        e = lw.ty(t)
        if isinstance(t, ir.RankedTensorType):
            n = lw.layout(t.shape).regs
            lw.env[v] = D(names[:n], e, tuple(t.shape))
            names = names[n:]
        else:
            lw.env[v] = U(names[0], e)
            names = names[1:]


def _results(lw: SimtLowering, n: int) -> tuple[str, list[str]]:
    if n == 0:
        return "", []
    r = lw.new("r")
    if n == 1:
        return f"{r} = ", [r]
    return f"{r}:{n} = ", [f"{r}#{i}" for i in range(n)]


def _yield(lw: SimtLowering, values, name: str, prefix=()) -> None:
    flat = list(prefix) + [n for v in values for n in _flatten(lw, v)]
    types = (["i1"] if prefix else []) + [t for v in values for t in _flat_types(lw, v.type)]
    lw.emit(f'"{name}"({", ".join(flat)}) : ({", ".join(types)}) -> ()')


def scf_for(lw: SimtLowering, op) -> None:
    """scf.for; loop-carried dot accumulators stay in the tensor-core layout (simt_dot.mma_loop_arg)."""
    from alloy.passes.simt_dot import _cop, as_mma, edge, mma_loop_arg
    from alloy.passes.simt_wgmma import lower_loop
    from alloy.passes.simt_wgmma_match import plan_loop

    plan = plan_loop(lw, op)
    if plan is not None:  # a Hopper tile_dot K loop: warpgroup MMA over a cp.async pipeline
        lower_loop(lw, op, plan)
        return
    ops = list(op.operands)
    lb, ub, st = (lw.val(v, op) for v in ops[:3])
    inits = ops[3:]
    mma = [mma_loop_arg(lw, op, i) for i in range(len(inits))]
    init_flat, types = [], []
    for v, is_mma in zip(inits, mma):
        if is_mma:
            x = as_mma(lw, v)
            init_flat += x.frags
            types += [_cop(x.elem, edge(lw))] * len(x.frags)
        else:
            init_flat += _flatten(lw, v)
            types += _flat_types(lw, v.type)
    prefix, names = _results(lw, len(types))
    block = op.regions[0].blocks[0]
    iv = lw.new("iv")
    args = [lw.new("a") for _ in types]
    lw.emit(f'{prefix}"scf.for"({", ".join([lb.name, ub.name, st.name] + init_flat)}) ({{')
    lw.emit(f'^bb0({", ".join([f"{iv}: {lb.type}"] + [f"{a}: {t}" for a, t in zip(args, types)])}):')
    lw.depth += 1
    lw.env[block.arguments[0]] = U(iv, lb.type)
    _bind_mixed(lw, list(block.arguments)[1:], args, mma)
    term = lw.body(block)
    flat = []
    for v, is_mma in zip(term.operands, mma):
        flat += as_mma(lw, v).frags if is_mma else _flatten(lw, v)
    lw.emit(f'"scf.yield"({", ".join(flat)}) : ({", ".join(types)}) -> ()')
    lw.depth -= 1
    lw.emit(f'}}) : ({", ".join([lb.type] * 3 + types)}) -> ({", ".join(types)})')
    _bind_mixed(lw, list(op.results), names, mma)


def _bind_mixed(lw: SimtLowering, values, names: list[str], mma: list[bool]) -> None:
    from alloy.passes.simt_dot import _rounds

    for v, is_mma in zip(values, mma):
        if is_mma:
            n = _rounds(lw, v.type.shape)
            lw.env[v] = M(names[:n], str(v.type.element_type), tuple(v.type.shape))
            names = names[n:]
        else:
            _bind(lw, [v], names)
            names = names[len(_flat_types(lw, v.type)):]


def scf_if(lw: SimtLowering, op) -> None:
    cond = lw.val(op.operands[0], op)
    if isinstance(cond, D):
        raise LoweringError("scf.if on a tile condition", op)
    types = [t for r in op.results for t in _flat_types(lw, r.type)]
    prefix, names = _results(lw, len(types))
    lw.emit(f'{prefix}"scf.if"({cond.name}) ({{')
    for i, region in enumerate(op.regions):
        blocks = list(region.blocks)
        if i == 1:
            lw.emit("}, {")
        if not blocks:
            continue
        lw.emit("^bb0:")
        lw.depth += 1
        term = lw.body(blocks[0])
        _yield(lw, term.operands, "scf.yield")
        lw.depth -= 1
    lw.emit(f'}}) : (i1) -> ({", ".join(types)})')
    _bind(lw, list(op.results), names)


def scf_while(lw: SimtLowering, op) -> None:
    inits = list(op.operands)
    init_flat = [n for v in inits for n in _flatten(lw, v)]
    in_types = [t for v in inits for t in _flat_types(lw, v.type)]
    out_types = [t for r in op.results for t in _flat_types(lw, r.type)]
    prefix, names = _results(lw, len(out_types))
    before, after = (r.blocks[0] for r in op.regions)
    lw.emit(f'{prefix}"scf.while"({", ".join(init_flat)}) ({{')
    args = [lw.new("a") for _ in in_types]
    lw.emit(f'^bb0({", ".join(f"{a}: {t}" for a, t in zip(args, in_types))}):')
    lw.depth += 1
    _bind(lw, list(before.arguments), args)
    cond_op = lw.body(before)
    cond_vals = list(cond_op.operands)
    c = lw.val(cond_vals[0], op)
    if isinstance(c, D):
        raise LoweringError("scf.while on a tile condition", op)
    _yield(lw, cond_vals[1:], "scf.condition", [c.name])
    lw.depth -= 1
    lw.emit("}, {")
    args = [lw.new("a") for _ in out_types]
    lw.emit(f'^bb0({", ".join(f"{a}: {t}" for a, t in zip(args, out_types))}):')
    lw.depth += 1
    _bind(lw, list(after.arguments), args)
    term = lw.body(after)
    _yield(lw, term.operands, "scf.yield")
    lw.depth -= 1
    lw.emit(f'}}) : ({", ".join(in_types)}) -> ({", ".join(out_types)})')
    _bind(lw, list(op.results), names)


def func_return(lw: SimtLowering, op) -> None:
    if len(op.operands):
        raise LoweringError("a kernel returns nothing", op)


def _lazy(module: str, fn: str):
    def call(lw, op):
        import importlib

        return getattr(importlib.import_module(module), fn)(lw, op)

    return call


HANDLERS = {
    "arith.constant": constant,
    "tile.program_id": program_id,
    "tile.num_programs": program_id,
    "tile.arange": arange,
    "tile.splat": splat,
    "tile.broadcast": reshape_like,
    "tile.expand_dims": reshape_like,
    "tile.reshape": reshape_like,
    "tile.trans": reshape_like,
    "tile.addptr": addptr,
    "tile.load": _lazy("alloy.passes.simt_memory", "lower_load"),
    "tile.store": _lazy("alloy.passes.simt_memory", "lower_store"),
    "tile.atomic_rmw": _lazy("alloy.passes.simt_memory", "lower_atomic_rmw"),
    "tile.atomic_cas": _lazy("alloy.passes.simt_memory", "lower_atomic_cas"),
    "tile.reduce": _lazy("alloy.passes.simt_reduce", "lower_reduce"),
    "tile.dot": _lazy("alloy.passes.simt_dot", "lower_dot"),
    "scf.for": scf_for,
    "scf.if": scf_if,
    "scf.while": scf_while,
    "func.return": func_return,
}
