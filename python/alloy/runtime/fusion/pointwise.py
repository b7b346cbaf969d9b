"""Pointwise kernels, fused into another kernel at its loads (a prologue) or at its stores (an epilogue).

A kernel is *pointwise* when it stores its output once, at the top level, at `out + offs`, and the
stored value and mask are functions of `offs` alone: built from `offs`, constants, scalar parameters and
loads through pointers that are themselves such functions (arith and math ops, splat, addptr, load; every
tile shaped like `offs`). Its output element at offset `o` is then its body evaluated at `o`, so the
element can be computed wherever another kernel needs it, at that kernel's own tile shape:

- prologue: a consumer's load `load(buf + o, mask, other)` becomes the producer's body at `o` (0 where
  the producer's mask is off there), `other` where the load's own mask is off;
- epilogue: a producer's store `store(buf + o, v, mask)` becomes the consumer's body at `o`, with `v`
  where it loaded `buf + offs`, stored to the consumer's output at `o` under both masks.

Both need the pointwise kernel to *cover* its output (some program stores every element): proved for
`offs = program_id(0) * BLOCK + arange(0, BLOCK)` on a grid (g, 1, 1) with g * BLOCK reaching the last
element, or declared with `@al.kernel(writes_all_outputs=True)`. An epilogue also needs the kernel it
fuses into to cover the buffer it hands over (declared, or proved), and the two outputs to have the same
number of elements.
"""
from __future__ import annotations

import math

from mlir import ir

from ...dialects import tile
from .ir_walk import both, has_offsets, int_cast, loads_of, offsets, owner, root, select, writes_to

_ELEMENTWISE_TILE_OPS = ("tile.splat", "tile.addptr", "tile.load")


class Pointwise:
    """A pointwise body: its store, the offsets tile it is a function of, and the ops computing the stored
    value and mask from it (in program order)."""

    def __init__(self, store, offs: ir.Value, ops: list, block: int | None) -> None:
        self.store, self.offs, self.ops, self.block = store, offs, ops, block
        operands = list(store.operands)
        self.value = operands[1]
        self.mask = operands[2] if len(operands) > 2 else None

    def covers(self, grid: tuple, numel: int) -> bool:
        """Whether a launch on `grid` stores every one of `numel` output elements (the proved pattern)."""
        return self.block is not None and tuple(grid[1:]) == (1, 1) and grid[0] * self.block >= numel

    def at(self, where: ir.Value, on_load=None) -> dict:
        """The body rebuilt at the insertion point over offsets `where` (any tile shape): {original value:
        its counterpart}. `on_load(load, mapped operands)` may give a load's value instead."""
        shape = tile.shape_of(where.type)
        mapping = {self.offs: int_cast(where, tile.element_type(self.offs.type))}
        for op in self.ops:
            operands = [mapping.get(v, v) for v in op.operands]
            if op.name == "tile.load" and on_load is not None:
                value = on_load(op, operands)
                if value is not None:
                    mapping[op.results[0]] = value
                    continue
            types = [_reshaped(r.type, shape) for r in op.results]
            attrs = {name: op.attributes[name] for name in op.attributes}
            if op.name == "arith.constant" and isinstance(types[0], ir.RankedTensorType):
                attrs["value"] = ir.DenseElementsAttr.get_splat(types[0], ir.DenseElementsAttr(attrs["value"]).get_splat_value())
            new = ir.Operation.create(op.name, results=types, operands=operands, attributes=attrs, loc=op.location)
            mapping.update(zip(op.results, new.results))
        return mapping


def _reshaped(t: ir.Type, shape) -> ir.Type:
    return tile.tile_type(shape, t.element_type) if isinstance(t, ir.RankedTensorType) else t


def analyse(entry, fn, out_arg) -> Pointwise | None:
    """The pointwise body storing to `out_arg`, or None when that kernel is not pointwise."""
    stores = writes_to(fn, out_arg)
    if len(stores) != 1 or stores[0].name != "tile.store":
        return None
    store = stores[0]
    top = [o.operation for o in entry.operations]
    if store not in top:
        return None
    addptr = owner(store.operands[0])
    if addptr is None or addptr.name != "tile.addptr":
        return None
    base, offs = addptr.operands
    splat = owner(base)
    if splat is None or splat.name != "tile.splat" or splat.operands[0] != out_arg:
        return None
    shape = tile.shape_of(offs.type)
    args = set(entry.arguments)
    seen, ops = {offs}, []

    def visit(v) -> bool:
        if v in seen:
            return True
        seen.add(v)
        op = owner(v)
        if op is None:
            return v in args and v != out_arg
        name = op.name
        if op not in top or len(op.regions) or not (name.startswith(("arith.", "math.")) or name in _ELEMENTWISE_TILE_OPS):
            return False
        for r in op.results:
            seen.add(r)
            if isinstance(r.type, ir.RankedTensorType) and tuple(r.type.shape) != shape:
                return False
        if name == "arith.constant" and isinstance(op.results[0].type, ir.RankedTensorType) and \
                not ir.DenseElementsAttr(op.attributes["value"]).is_splat:
            return False
        if name == "tile.load" and (root(op.operands[0]) == out_arg or tile.shape_of(op.operands[0].type) is None):
            return False
        if not all(visit(o) for o in op.operands):
            return False
        ops.append(op)
        return True

    if shape is None or not all(visit(v) for v in list(store.operands)[1:]):
        return None
    return Pointwise(store, offs, ops, _block(offs))


def _block(offs) -> int | None:
    """BLOCK when `offs` is `program_id(0) * BLOCK + arange(0, BLOCK)` (either order), else None."""
    add = owner(offs)
    if add is None or add.name != "arith.addi":
        return None
    for start, ramp in (tuple(add.operands), tuple(reversed(list(add.operands)))):
        arange, splat = owner(ramp), owner(start)
        if arange is None or splat is None or arange.name != "tile.arange" or splat.name != "tile.splat":
            continue
        lo, hi = (ir.IntegerAttr(arange.attributes[k]).value for k in ("start", "end"))
        mul = owner(splat.operands[0])
        if lo != 0 or mul is None or mul.name != "arith.muli":
            continue
        for pid, step in (tuple(mul.operands), tuple(reversed(list(mul.operands)))):
            pid_op, step_op = owner(pid), owner(step)
            if pid_op is not None and pid_op.name == "tile.program_id" and \
                    ir.IntegerAttr(pid_op.attributes["axis"]).value == 0 and step_op is not None and \
                    step_op.name == "arith.constant" and ir.IntegerAttr(step_op.attributes["value"]).value == hi:
                return hi
    return None


def _same_elements(load, value_type) -> bool:
    return tile.element_type(load.results[0].type) == tile.element_type(value_type)


def fuse_prologue(link) -> bool:
    """Compute the producer's elements where the consumer loads them (False, nothing changed, when the
    producer is not pointwise, does not cover its output, or a load's offsets cannot be rebuilt)."""
    if len(link.producer.shapes) != 1:
        return False  # its other outputs' stores would keep its body
    pw = analyse(link.entry, link.fn, link.out_arg)
    if pw is None or not (link.producer_declares_cover() or pw.covers(link.producer.grid, link.out_numel)):
        return False
    loads = loads_of(link.fn, link.in_args)
    if not loads:
        return False
    for ld in loads:
        ptr = ld.operands[0]
        if tile.shape_of(ptr.type) is None or not has_offsets(ptr, root(ptr)) or not _same_elements(ld, pw.value.type):
            return False
    for ld in loads:
        ptr, mask, other = tile.load_operands(ld)
        with ir.InsertionPoint(ld), ld.location:
            body = pw.at(offsets(ptr, root(ptr)))
            value = select(body[pw.mask] if pw.mask is not None else None, body[pw.value], None)
            value = select(mask, value, other)
        ld.results[0].replace_all_uses_with(value)
        ld.erase()
    pw.store.erase()
    return True


def fuse_epilogue(link, producer_covers: bool) -> bool:
    """Compute the consumer's elements where the producer stores the link's buffer (False, nothing
    changed, when the consumer is not pointwise, either side does not cover its output, or a store's
    offsets cannot be rebuilt)."""
    consumer = link.consumer
    if not producer_covers or len(consumer.shapes) != 1:
        return False
    (q_name,) = consumer.shapes
    q_out = link.arg_of(link.consumer_indices[0], q_name)
    pw = analyse(link.entry, link.fn, q_out)
    q_numel = math.prod(consumer.shapes[q_name])
    if pw is None or q_numel != link.out_numel or not (
            consumer.kernel.writes_all_outputs or pw.covers(consumer.grid, q_numel)):
        return False
    handed = [op for op in pw.ops if op.name == "tile.load" and root(op.operands[0]) in link.in_args]
    if len(handed) != len(loads_of(link.fn, link.in_args)) or not handed:
        return False  # the consumer reads the buffer outside its pointwise body
    for ld in handed:
        addptr = owner(ld.operands[0])
        if addptr.name != "tile.addptr" or addptr.operands[1] != pw.offs or owner(addptr.operands[0]).name != "tile.splat":
            return False  # not the element it stores
    stores = writes_to(link.fn, link.out_arg)
    if not stores or loads_of(link.fn, [link.out_arg]):
        return False
    for s in stores:
        ptr = s.operands[0]
        if s.name != "tile.store" or tile.shape_of(ptr.type) is None or not has_offsets(ptr, link.out_arg) or \
                any(not _same_elements(ld, s.operands[1].type) for ld in handed):
            return False
    for s in stores:
        operands = list(s.operands)
        ptr, value, mask = operands[0], operands[1], (operands[2] if len(operands) > 2 else None)

        def handed_value(load, mapped, value=value):
            if root(load.operands[0]) not in link.in_args:
                return None
            _, m, o = tile.load_operands(load)
            index = {v: i for i, v in enumerate(load.operands)}
            return select(mapped[index[m]] if m is not None else None, value,
                          mapped[index[o]] if o is not None else None)

        with ir.InsertionPoint(s), s.location:
            where = offsets(ptr, link.out_arg)
            body = pw.at(where, handed_value)
            out = tile.addptr(tile.splat(q_out, tile.shape_of(where.type)), where)
            tile.store(out, body[pw.value], both(mask, body[pw.mask] if pw.mask is not None else None))
        s.erase()
    pw.store.erase()
    return True
