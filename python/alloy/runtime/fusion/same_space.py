"""Fusing a link whose two kernels share the iteration space: the consumer loads, through the same pointer
and mask expression, exactly what each program of the producer has just stored.

For a link producer -> consumer through the producer's output buffer, on the same grid, it is legal when
- the producer stores to that output exactly once, at the top level of its body;
- every load of the consumer from that buffer is at its top level, through a pointer and a mask that
  are the *same expression* as the store's: the same ops over the same program ids, constants and
  launch values (two parameters are the same when the launch binds them the same value, or the same
  buffer), so each program reads exactly the elements it has just stored, and no program reads
  another's (no cross-program dependence).
Each such load then reads the stored value (`other` where masked off) and the store goes.
"""
from __future__ import annotations

from mlir import ir

from ...dialects import tile
from .ir_walk import loads_of, select, writes_to


def _keyer(entry, classes):
    args = {a: i for i, a in enumerate(entry.arguments)}
    memo: dict = {}

    def key(v):
        if v in memo:
            return memo[v]
        if isinstance(v, ir.BlockArgument):
            k = ("arg", classes[args[v]]) if v in args else ("block-arg", id(v))
        else:
            op = v.owner.operation if hasattr(v.owner, "operation") else v.owner
            attrs = tuple(sorted((k, str(op.attributes[k])) for k in op.attributes))
            k = (op.name, attrs, str(v.type), tuple(key(o) for o in op.operands),
                 [r for r in op.results].index(v))
        memo[v] = k
        return k

    return key


def fuse(link) -> bool:
    """Replace the consumer's loads of the link's buffer by the producer's stored values (False, with
    nothing changed, when that is not legal)."""
    entry, fn = link.entry, link.fn
    key = _keyer(entry, link.classes)
    top = [o.operation for o in entry.operations]
    stores = writes_to(fn, link.out_arg)
    if len(stores) != 1 or stores[0].name != "tile.store" or stores[0] not in top:
        return False
    store = stores[0]
    s_ops = list(store.operands)
    s_ptr, s_val, s_mask = s_ops[0], s_ops[1], (s_ops[2] if len(s_ops) > 2 else None)
    loads = loads_of(fn, link.in_args)
    if not loads:
        return False
    for ld in loads:
        ptr, mask, other = tile.load_operands(ld)
        if ld not in top or key(ptr) != key(s_ptr) or (mask is None) != (s_mask is None) or \
                (mask is not None and key(mask) != key(s_mask)) or ld.results[0].type != s_val.type:
            return False
    for ld in loads:
        ptr, mask, other = tile.load_operands(ld)
        with ir.InsertionPoint(ld), ld.location:
            value = select(mask, s_val, other)
        ld.results[0].replace_all_uses_with(value)
        ld.erase()
    store.erase()
    return True
