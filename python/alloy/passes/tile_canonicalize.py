"""tile-canonicalize: dead-code elimination and CSE of pure tile ops.

IRDL ops carry no traits, so upstream canonicalize/cse neither erase nor
merge them. This pass treats the side-effect-free tile ops (and arith/math)
as pure: identical ops (same name, operands, attributes, result types)
dominated by an earlier one are merged, and ops whose results are unused are
erased (tile.load too, which only reads), until nothing changes.
"""
from __future__ import annotations

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


def tile_canonicalize(op, pass_=None) -> None:
    """Pass entry: CSE then DCE over every function of the module `op`, to a fixed point."""
    module = op.operation if hasattr(op, "operation") else op
    body = module.regions[0].blocks[0]
    while True:
        changed = 0
        for f in body.operations:
            for region in f.operation.regions:
                for b in region.blocks:
                    changed += _cse_block(b, {})
                    changed += _dce_block(b)
        if not changed:
            return
