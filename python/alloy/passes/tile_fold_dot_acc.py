"""tile-fold-dot-acc: `x + tile.dot(a, b, 0)` → `tile.dot(a, b, x)`.

`acc += al.tile_dot(a, b)` reads as a dot into a zero accumulator followed by
an add; folding the add into the accumulator lets the target keep the
accumulator in registers across the K loop. Applies when the dot's
accumulator is a zero splat constant and the add is the dot's only user.
"""
from __future__ import annotations

from mlir import ir

from alloy.dialects import tile


def _is_zero_splat(v) -> bool:
    owner = v.owner
    if not isinstance(owner, ir.Operation) and hasattr(owner, "operation"):
        owner = owner.operation
    if not isinstance(owner, ir.Operation) or owner.name != "arith.constant":
        return False
    attr = owner.attributes["value"]
    return isinstance(attr, ir.DenseElementsAttr) and attr.is_splat and float(
        ir.FloatAttr(attr.get_splat_value()).value) == 0.0


def _dot_operand(add):
    for i in (0, 1):
        v = add.operands[i]
        op = v.owner
        if isinstance(op, ir.OpView):
            op = op.operation
        if isinstance(op, ir.Operation) and op.name == "tile.dot" and _is_zero_splat(op.operands[2]) \
                and len(list(v.uses)) == 1:
            return op, add.operands[1 - i]
    return None, None


def tile_fold_dot_acc(module_op, pass_=None) -> None:
    adds = []

    def collect(op):
        if op.name == "arith.addf" and isinstance(op.results[0].type, ir.RankedTensorType):
            adds.append(op)
        return ir.WalkResult.ADVANCE

    module_op.walk(collect)
    for add in adds:
        add = add.operation if isinstance(add, ir.OpView) else add
        dot, other = _dot_operand(add)
        if dot is None or other.type != add.results[0].type:
            continue
        with ir.InsertionPoint(add), add.location:
            new = tile.dot(dot.operands[0], dot.operands[1], other)
        add.results[0].replace_all_uses_with(new)
        add.erase()
        dot.erase()
