"""Lowering of scf.for / scf.if / scf.while (part of convert-tile-to-vector).

The ops are rebuilt with converted types; a pointer value is carried as its
`index` offset (plus a vector of i64 lane offsets for pointer tiles) and must
keep one base argument across iterations and branches. An scf.for whose
iter_arg only feeds a tile.dot accumulator that is yielded back keeps that
accumulator in a stack buffer (see dot_fma.memory_accumulators); so does any
value tile of MEMORY_CARRIED elements or more (in registers it would be spilled
whole at every iteration), and strip-mined loops read it chunk by chunk.
"""
from __future__ import annotations

import math

from mlir import ir

from alloy.dialects import tile
from alloy.passes.vector.dot_fma import (MemTile, load_rows, load_tile, memory_accumulators, scratch, store_rows,
                                         store_tile)
from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.values import LoweredValue, vtype

MEMORY_CARRIED = 512  # value tiles of this many elements cross scf.for iterations in a stack buffer


def lower_for(lw: Lowering, op) -> None:
    lb, ub, st = (lw.val(v, op) for v in list(op.operands)[:3])
    all_inits = list(op.operands)[3:]
    block = op.regions[0].blocks[0]
    all_args = list(block.arguments)[1:]
    mem = {}
    for i in memory_accumulators(op):  # dot accumulators kept in a stack buffer across iterations
        shape, elem = tuple(all_args[i].type.shape), str(all_args[i].type.element_type)
        buf = scratch(lw, shape, elem)
        store_rows(lw, lw.val(all_inits[i], op).name, buf, shape, elem)
        mem[i] = MemTile(buf, shape, elem)
        lw.env[all_args[i]] = mem[i]
    carried = {}
    for i in _carried_in_memory(all_args, mem):
        shape, elem = tuple(all_args[i].type.shape), str(all_args[i].type.element_type)
        carried[i] = scratch(lw, shape, elem)
        _store_whole(lw, all_inits[i], carried[i], shape, elem)
    kept = [i for i in range(len(all_inits)) if i not in mem and i not in carried]
    inits = [all_inits[i] for i in kept]
    args = [all_args[i] for i in kept]
    results = [op.results[i] for i in kept]
    init_flat = [n for v in inits for n in lw.flatten(v)]
    likes = [lw.env[v] for v in inits]
    types = [t for v in inits for t in lw.flat_types(v.type)]
    prefix, names = lw.results(len(types))
    iv = lw.new("iv")
    arg_names = [lw.new("a") for _ in types]
    lw.emit(f'{prefix}"scf.for"({", ".join([lb.name, ub.name, st.name] + init_flat)}) ({{')
    sig = ", ".join([f"{iv}: {lb.type}"] + [f"{a}: {t}" for a, t in zip(arg_names, types)])
    lw.emit(f"^bb0({sig}):")
    lw.depth += 1
    lw.env[block.arguments[0]] = LoweredValue(iv, lb.type)
    for i, buf in carried.items():  # read at each iteration (strip-mined loops read it chunk by chunk)
        arg = all_args[i]
        _bind_buffer(lw, arg, buf, tuple(arg.type.shape), str(arg.type.element_type))
    lw.bind_all(args, [v.type for v in inits], arg_names, likes)
    term = lw.body(block)
    for i, buf in carried.items():
        arg = all_args[i]
        _store_whole(lw, term.operands[i], buf, tuple(arg.type.shape), str(arg.type.element_type))
    yields = [term.operands[i] for i in kept]
    for v, like in zip(yields, likes):
        lw.check_same_base(lw.env[v], like, op)
    _yield(lw, yields, "scf.yield")
    lw.depth -= 1
    lw.emit(f'}}) : ({", ".join([lb.type] * 3 + types)}) -> ({", ".join(types)})')
    lw.bind_all(results, [v.type for v in inits], names, likes)
    for i, mt in mem.items():
        lw.env[op.results[i]] = LoweredValue(load_rows(lw, mt.buf, mt.shape, mt.elem), vtype(mt.shape, mt.elem))
    for i, buf in carried.items():
        arg = all_args[i]
        _bind_buffer(lw, op.results[i], buf, tuple(arg.type.shape), str(arg.type.element_type))


def _carried_in_memory(args, taken) -> list[int]:
    """iter_arg positions of value tiles (not pointers, not masks) of MEMORY_CARRIED elements or more."""
    out = []
    for i, arg in enumerate(args):
        t = arg.type
        if i in taken or not isinstance(t, ir.RankedTensorType) or len(t.shape) not in (1, 2):
            continue
        if tile.is_ptr(t.element_type) or str(t.element_type) == "i1" or math.prod(t.shape) < MEMORY_CARRIED:
            continue
        out.append(i)
    return out


def _store_whole(lw: Lowering, v, buf: str, shape, elem: str) -> None:
    """Write tile v into buf: a copy from the buffer a strip-mined loop left it in, else a whole store."""
    held = lw.chunk_bufs.get(v)
    n = math.prod(shape)
    if held is not None and held[1] == "value":
        if held[0] != buf:
            lw.emit(f"memref.copy {held[0]}, {buf} : memref<{n}x{elem}> to memref<{n}x{elem}>")
        return
    store_tile(lw, lw.val(v).name, buf, shape, elem)


def _bind_buffer(lw: Lowering, v, buf: str, shape, elem: str) -> None:
    """v is what buf holds: strip-mined loops read it from there (its whole load is dead code then)."""
    lw.env[v] = LoweredValue(load_tile(lw, buf, shape, elem), vtype(shape, elem))
    lw.chunk_bufs[v] = (buf, "value", None)


def _yield(lw: Lowering, values, name: str, prefix_operands=()) -> None:
    flat = list(prefix_operands) + [n for v in values for n in lw.flatten(v)]
    types = [t for t in (["i1"] if prefix_operands else [])] + [t for v in values for t in lw.flat_types(v.type)]
    lw.emit(f'"{name}"({", ".join(flat)}) : ({", ".join(types)}) -> ()')


def lower_if(lw: Lowering, op) -> None:
    cond = lw.val(op.operands[0], op)
    rtypes = [t for r in op.results for t in lw.flat_types(r.type)]
    prefix, names = lw.results(len(rtypes))
    lw.emit(f'{prefix}"scf.if"({cond.name}) ({{')
    likes = None
    for i, region in enumerate(op.regions):
        blocks = list(region.blocks)
        if i == 1:
            lw.emit("}, {")
        if not blocks:
            continue
        lw.emit("^bb0:")
        lw.depth += 1
        term = lw.body(blocks[0])
        vals = [lw.env[v] for v in term.operands]
        if likes is None:
            likes = vals
        else:
            for a, b in zip(vals, likes):
                lw.check_same_base(a, b, op)
        _yield(lw, term.operands, "scf.yield")
        lw.depth -= 1
    lw.emit(f'}}) : (i1) -> ({", ".join(rtypes)})')
    lw.bind_all(op.results, [r.type for r in op.results], names, likes or [])


def lower_while(lw: Lowering, op) -> None:
    inits = list(op.operands)
    init_flat = [n for v in inits for n in lw.flatten(v)]
    likes = [lw.env[v] for v in inits]
    in_types = [t for v in inits for t in lw.flat_types(v.type)]
    out_types = [t for r in op.results for t in lw.flat_types(r.type)]
    prefix, names = lw.results(len(out_types))
    before, after = (r.blocks[0] for r in op.regions)
    lw.emit(f'{prefix}"scf.while"({", ".join(init_flat)}) ({{')
    arg_names = [lw.new("a") for _ in in_types]
    lw.emit(f'^bb0({", ".join(f"{a}: {t}" for a, t in zip(arg_names, in_types))}):')
    lw.depth += 1
    lw.bind_all(list(before.arguments), [v.type for v in inits], arg_names, likes)
    cond_op = lw.body(before)
    cond_vals = list(cond_op.operands)
    out_likes = [lw.env[v] for v in cond_vals[1:]]
    _yield(lw, cond_vals[1:], "scf.condition", [lw.val(cond_vals[0], op).name])
    lw.depth -= 1
    lw.emit("}, {")
    arg_names = [lw.new("a") for _ in out_types]
    lw.emit(f'^bb0({", ".join(f"{a}: {t}" for a, t in zip(arg_names, out_types))}):')
    lw.depth += 1
    lw.bind_all(list(after.arguments), [r.type for r in op.results], arg_names, out_likes)
    term = lw.body(after)
    for v, like in zip(term.operands, likes):
        lw.check_same_base(lw.env[v], like, op)
    _yield(lw, term.operands, "scf.yield")
    lw.depth -= 1
    lw.emit(f'}}) : ({", ".join(in_types)}) -> ({", ".join(out_types)})')
    lw.bind_all(op.results, [r.type for r in op.results], names, out_likes)
