"""Control flow in convert-tile-to-simt: scf.for / if / while rebuilt over this thread's registers.

A tile operand of a region op is carried as its registers, a scalar as one
value. Loop-carried dot accumulators stay in the matrix-fragment layout
(dot.mma_loop_arg). The helpers that flatten values to registers and bind
them back are shared with hopper_wgmma.py's pipelined loops.
"""
from __future__ import annotations

from mlir import ir

from alloy.passes.errors import LoweringError
from alloy.passes.simt.dot import as_fragments, fragment_type, fragments_of, mma_loop_arg
from alloy.passes.simt import threads
from alloy.passes.simt.lowering import SimtLowering
from alloy.passes.simt.values import Distributed, Fragments, Uniform


def flat_types(lw: SimtLowering, t: ir.Type) -> list[str]:
    if lw.simt and isinstance(t, ir.RankedTensorType):
        return threads.flat_types(lw, t)
    e = lw.ty(t)
    if isinstance(t, ir.RankedTensorType):
        return [e] * lw.layout(t.shape).regs
    return [e]


def flatten(lw: SimtLowering, v: ir.Value) -> list[str]:
    if lw.simt and isinstance(v.type, ir.RankedTensorType):
        return threads.flatten(lw, v)
    x = lw.val(v)
    if isinstance(x, Distributed):
        return list(x.regs)
    return [x.name]


def bind(lw: SimtLowering, values, names: list[str]) -> None:
    for v in values:
        t = v.type
        if lw.simt and isinstance(t, ir.RankedTensorType):
            names = threads.bind(lw, v, names)
            continue
        e = lw.ty(t)
        if isinstance(t, ir.RankedTensorType):
            n = lw.layout(t.shape).regs
            lw.env[v] = Distributed(names[:n], e, tuple(t.shape))
            names = names[n:]
        else:
            lw.env[v] = Uniform(names[0], e)
            names = names[1:]


def yield_values(lw: SimtLowering, values, name: str, prefix=()) -> None:
    flat = list(prefix) + [n for v in values for n in flatten(lw, v)]
    types = (["i1"] if prefix else []) + [t for v in values for t in flat_types(lw, v.type)]
    lw.emit(f'"{name}"({", ".join(flat)}) : ({", ".join(types)}) -> ()')


def lower_for(lw: SimtLowering, op) -> None:
    """scf.for; loop-carried dot accumulators stay in the fragment layout (dot.mma_loop_arg)."""
    ops = list(op.operands)
    lb, ub, st = (lw.val(v, op) for v in ops[:3])
    inits = ops[3:]
    mma = [mma_loop_arg(lw, op, i) for i in range(len(inits))]
    init_flat, types = [], []
    for v, is_mma in zip(inits, mma):
        if is_mma:
            x = as_fragments(lw, v)
            init_flat += x.frags
            types += [fragment_type(lw, x.elem)] * len(x.frags)
        else:
            init_flat += flatten(lw, v)
            types += flat_types(lw, v.type)
    prefix, names = lw.results(len(types))
    block = op.regions[0].blocks[0]
    iv = lw.new("iv")
    args = [lw.new("a") for _ in types]
    lw.emit(f'{prefix}"scf.for"({", ".join([lb.name, ub.name, st.name] + init_flat)}) ({{')
    lw.emit(f'^bb0({", ".join([f"{iv}: {lb.type}"] + [f"{a}: {t}" for a, t in zip(args, types)])}):')
    lw.depth += 1
    lw.env[block.arguments[0]] = Uniform(iv, lb.type)
    bind_mixed(lw, list(block.arguments)[1:], args, mma)
    term = lw.body(block)
    flat = []
    for v, is_mma in zip(term.operands, mma):
        flat += as_fragments(lw, v).frags if is_mma else flatten(lw, v)
    lw.emit(f'"scf.yield"({", ".join(flat)}) : ({", ".join(types)}) -> ()')
    lw.depth -= 1
    lw.emit(f'}}) : ({", ".join([lb.type] * 3 + types)}) -> ({", ".join(types)})')
    bind_mixed(lw, list(op.results), names, mma)


def bind_mixed(lw: SimtLowering, values, names: list[str], mma: list[bool]) -> None:
    for v, is_mma in zip(values, mma):
        if is_mma:
            n = fragments_of(lw, v.type.shape)
            lw.env[v] = Fragments(names[:n], str(v.type.element_type), tuple(v.type.shape))
            names = names[n:]
        else:
            bind(lw, [v], names)
            names = names[len(flat_types(lw, v.type)):]


def lower_if(lw: SimtLowering, op) -> None:
    cond = lw.val(op.operands[0], op)
    if isinstance(cond, Distributed):
        raise LoweringError("scf.if on a tile condition", op)
    types = [t for r in op.results for t in flat_types(lw, r.type)]
    prefix, names = lw.results(len(types))
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
        yield_values(lw, term.operands, "scf.yield")
        lw.depth -= 1
    lw.emit(f'}}) : (i1) -> ({", ".join(types)})')
    bind(lw, list(op.results), names)


def lower_while(lw: SimtLowering, op) -> None:
    inits = list(op.operands)
    init_flat = [n for v in inits for n in flatten(lw, v)]
    in_types = [t for v in inits for t in flat_types(lw, v.type)]
    out_types = [t for r in op.results for t in flat_types(lw, r.type)]
    prefix, names = lw.results(len(out_types))
    before, after = (r.blocks[0] for r in op.regions)
    lw.emit(f'{prefix}"scf.while"({", ".join(init_flat)}) ({{')
    args = [lw.new("a") for _ in in_types]
    lw.emit(f'^bb0({", ".join(f"{a}: {t}" for a, t in zip(args, in_types))}):')
    lw.depth += 1
    bind(lw, list(before.arguments), args)
    cond_op = lw.body(before)
    cond_vals = list(cond_op.operands)
    c = lw.val(cond_vals[0], op)
    if isinstance(c, Distributed):
        raise LoweringError("scf.while on a tile condition", op)
    yield_values(lw, cond_vals[1:], "scf.condition", [c.name])
    lw.depth -= 1
    lw.emit("}, {")
    args = [lw.new("a") for _ in out_types]
    lw.emit(f'^bb0({", ".join(f"{a}: {t}" for a, t in zip(args, out_types))}):')
    lw.depth += 1
    bind(lw, list(after.arguments), args)
    term = lw.body(after)
    yield_values(lw, term.operands, "scf.yield")
    lw.depth -= 1
    lw.emit(f'}}) : ({", ".join(in_types)}) -> ({", ".join(out_types)})')
    bind(lw, list(op.results), names)
