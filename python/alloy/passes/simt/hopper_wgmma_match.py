"""Which K loops hopper_wgmma.py pipelines: the pattern match and the plan of the loop body.

`plan_loop(lw, for_op)` accepts an scf.for whose body loads an a tile and a b
tile (the b through tile.trans) used only by one `tile.dot` accumulating into an
iter_arg, and splits the body: the ops computing the loads' pointers (the
slice) and masks, the updates of the iter_args the slice reads, and the ops
still needed for the current iteration. Pointer iter_args used only by the
slice and unused after the loop are no longer carried (`dropped`). The shape,
type and layout requirements are listed in hopper_wgmma.py.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlir import ir

from alloy.dialects import tile
from alloy.passes.simt.lowering import SimtLowering


@dataclass
class Plan:
    """How lower_loop rebuilds one pipelined K loop."""

    acc_index: int  # iter_arg index of the accumulator
    loads: tuple  # (a load op, b load op)
    slice_ops: list  # ops computing the loads' pointers, in block order
    mask_ops: list  # the other ops computing the loads' masks (evaluated only on the general copy path)
    update_ops: list  # ops computing the yields of the slice's iter_args, in block order
    slice_args: list  # iter_arg indices the slice reads
    dropped: list  # slice iter_arg indices no longer carried (results unused after the loop)
    need_ops: list  # the other ops of the body still evaluated for the current iteration
    bm: int
    bn: int
    bk: int
    elem: str


# ------------------------------------------------------------------ matching
def owner(v):
    """The op defining v, or None for a block argument."""
    if isinstance(v, ir.BlockArgument) or isinstance(v.owner, ir.Block):
        return None
    return v.owner


def _closure(roots, block_ops: set) -> set:
    """Ops of the block (by operation) that the values `roots` depend on."""
    seen: set = set()
    stack = list(roots)
    while stack:
        v = stack.pop()
        o = owner(v)
        if o is None or o.operation not in block_ops or o.operation in seen:
            continue
        seen.add(o.operation)
        stack.extend(o.operands)
    return seen


def _args_used(ops, block) -> set:
    args = list(block.arguments)
    used = set()
    for o in ops:
        for v in o.operands:
            if owner(v) is None and v in args:
                used.add(args.index(v))
    return used


def zero_or_none(v) -> bool:
    if v is None:
        return True
    o = owner(v)
    if o is None or o.operation.name != "arith.constant":
        return False
    attr = o.attributes["value"]
    return isinstance(attr, ir.DenseElementsAttr) and attr.is_splat and \
        str(attr.get_splat_value()).split(":")[0].strip() in ("0.000000e+00", "0", "0.0")


def _only_use(v, user) -> bool:
    uses = list(v.uses)
    return len(uses) == 1 and _op(uses[0].owner) == _op(user)


def _op(x):
    return getattr(x, "operation", x)


def plan_loop(lw: SimtLowering, for_op) -> Plan | None:
    """The pipelining plan of an scf.for, or None when it does not have the supported form."""
    if not lw.target.warpgroup_mma or lw.nt not in (128, 256) or lw.vec != 8:
        return None
    block = for_op.regions[0].blocks[0]
    ops = list(block.operations)
    term = ops[-1]
    dots = [o for o in ops if o.operation.name == "tile.dot"]
    if len(dots) != 1 or any(len(o.regions) for o in ops[:-1]):
        return None
    dot = dots[0]
    a_v, b_v, c_v = dot.operands
    args = list(block.arguments)
    if owner(c_v) is not None or c_v not in args[1:]:
        return None
    acc_index = args.index(c_v) - 1
    if term.operands[acc_index] != dot.results[0] or not _only_use(c_v, dot) or \
            not _only_use(dot.results[0], term):
        return None
    la, tr = owner(a_v), owner(b_v)
    if la is None or tr is None or la.operation.name != "tile.load" or tr.operation.name != "tile.trans":
        return None
    lb = owner(tr.operands[0])
    if lb is None or lb.operation.name != "tile.load":
        return None
    if not (_only_use(a_v, dot) and _only_use(b_v, dot) and _only_use(tr.operands[0], tr)):
        return None
    (bm, bk), (bk2, bn) = a_v.type.shape, b_v.type.shape
    elem = str(a_v.type.element_type)
    if elem not in ("f16", "bf16") or str(b_v.type.element_type) != elem or \
            str(c_v.type.element_type) != "f32" or bk != bk2:
        return None
    nwg = lw.nt // 128
    if bm % (64 * nwg) or bn % 16 or bn > 256 or (bm // 64 // nwg) * bn // 2 > 128 or bk % 32:
        return None
    for ld in (la, lb):
        ptr, _, other = tile.load_operands(ld)
        strides = lw.axis.strides(ptr)
        if not zero_or_none(other) or strides is None or strides[-1] != 1:
            return None
    block_ops = {o.operation for o in ops}
    special = {la.operation, lb.operation, tr.operation, dot.operation, term.operation}
    roots = [v for ld in (la, lb) for v in tile.load_operands(ld) if v is not None]
    slice_set = _closure(roots, block_ops)
    if slice_set & special:
        return None
    slice_ops = [o for o in ops if o.operation in slice_set]
    ptr_set = _closure([tile.load_operands(ld)[0] for ld in (la, lb)], block_ops)
    mask_ops = [o for o in slice_ops if o.operation not in ptr_set]
    slice_ops = [o for o in slice_ops if o.operation in ptr_set]
    slice_args = sorted({i - 1 for i in _args_used(slice_ops, block) if i > 0} |
                        {args.index(v) - 1 for v in roots if owner(v) is None and v in args[1:]})
    if acc_index in slice_args:
        return None
    update_set: set = set()
    for _ in range(len(args)):  # the slice's iter_args, closed under their updates
        update_set = _closure([term.operands[i] for i in slice_args], block_ops)
        more = sorted(i - 1 for i in _args_used([o for o in ops if o.operation in update_set], block) if i > 0)
        if set(more) <= set(slice_args):
            break
        slice_args = sorted(set(slice_args) | set(more))
    if update_set & special or acc_index in slice_args:
        return None
    update_ops = [o for o in ops if o.operation in update_set]
    kept = [i for i in range(len(args) - 1) if i != acc_index]
    dropped = [i for i in slice_args if not list(for_op.results[i].uses)]
    while True:
        live = [term.operands[i] for i in kept if i not in dropped]
        effects = [o for o in ops[:-1] if o.operation not in special and _has_effect(o)]
        need_set = _closure(live + [v for o in effects for v in o.operands], block_ops) | \
            {o.operation for o in effects}
        if need_set & special:
            return None
        used = {i - 1 for i in _args_used([o for o in ops if o.operation in need_set], block) if i > 0}
        back = [i for i in dropped if i in used]
        if not back:
            break
        dropped = [i for i in dropped if i not in back]
    need_ops = [o for o in ops[:-1] if o.operation in need_set]
    return Plan(acc_index, (la, lb), slice_ops, mask_ops, update_ops, slice_args, dropped, need_ops,
                bm, bn, bk, elem)


def _has_effect(op) -> bool:
    return op.operation.name in ("tile.store", "tile.atomic_rmw", "tile.atomic_cas", "tile.print",
                                 "tile.assert") or op.operation.name.startswith("gpu.")
