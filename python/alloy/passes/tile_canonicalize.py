"""tile-canonicalize: dead-code elimination and CSE of pure tile ops, and reductions of transposes.

IRDL ops carry no traits, so upstream canonicalize/cse neither erase nor
merge them. This pass treats the side-effect-free tile ops (and arith/math)
as pure: identical ops (same name, operands, attributes, result types)
dominated by an earlier one are merged, and ops whose results are unused are
erased (tile.load too, which only reads), until nothing changes. A reduction
of a transposed 2-D tile reduces the tile itself along the other axis (the
same values; no transpose is materialised).
"""
from __future__ import annotations

from mlir import ir

PURE_TILE = frozenset({
    "tile.program_id", "tile.num_programs", "tile.arange", "tile.splat", "tile.broadcast",
    "tile.expand_dims", "tile.reshape", "tile.trans", "tile.addptr", "tile.reduce", "tile.dot",
})
READ_ONLY = frozenset({"tile.load"})


def _is_pure(op) -> bool:
    name = op.name
    if name in PURE_TILE:
        return True
    return (name.startswith("arith.") or name.startswith("math.")) and len(op.regions) == 0


def _key(op):
    attrs = tuple(sorted((k, str(op.attributes[k])) for k in op.attributes))
    return (op.name, tuple(op.operands), attrs, tuple(str(r.type) for r in op.results))


def _cse_block(block, scope: dict) -> int:
    merged = 0
    scope = dict(scope)
    for o in list(block.operations):
        op = o.operation
        if _is_pure(op) and len(op.results):
            k = _key(op)
            prev = scope.get(k)
            if prev is not None:
                for a, b in zip(op.results, prev.results):
                    a.replace_all_uses_with(b)
                op.erase()
                merged += 1
                continue
            scope[k] = op
        for region in op.regions:
            for b in region.blocks:
                merged += _cse_block(b, scope)
    return merged


def _dce_block(block) -> int:
    erased = 0
    for o in reversed(list(block.operations)):
        op = o.operation
        for region in op.regions:
            for b in region.blocks:
                erased += _dce_block(b)
        if (_is_pure(op) or op.name in READ_ONLY) and len(op.results) and all(
                next(iter(r.uses), None) is None for r in op.results):
            op.erase()
            erased += 1
    return erased


def _fold_reduce_of_trans(block) -> int:
    """reduce(trans(x), axis) -> reduce(x, 1 - axis) for 2-D x."""
    folded = 0
    for o in block.operations:
        op = o.operation
        for region in op.regions:
            for b in region.blocks:
                folded += _fold_reduce_of_trans(b)
        if op.name != "tile.reduce" or not isinstance(op.operands[0].owner, ir.OpView):
            continue
        src = op.operands[0].owner.operation
        if src.name != "tile.trans" or len(ir.RankedTensorType(src.operands[0].type).shape) != 2:
            continue
        axis = ir.IntegerAttr(op.attributes["axis"]).value
        op.operands[0] = src.operands[0]
        op.attributes["axis"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64, op.context), 1 - axis)
        folded += 1
    return folded


def tile_canonicalize(op, pass_=None) -> None:
    """Pass entry: CSE then DCE over every function of the module `op`, to a fixed point."""
    module = op.operation if hasattr(op, "operation") else op
    body = module.regions[0].blocks[0]
    while True:
        changed = 0
        for f in body.operations:
            for region in f.operation.regions:
                for b in region.blocks:
                    changed += _fold_reduce_of_trans(b)
                    changed += _cse_block(b, {})
                    changed += _dce_block(b)
        if not changed:
            return
