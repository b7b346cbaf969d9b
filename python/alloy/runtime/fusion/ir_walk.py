"""Walking the merged tile IR of a fusion: where pointers come from, which ops touch a buffer, the element
offsets a pointer addresses."""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith

from ...dialects import tile

POINTER_VIEWS = ("tile.addptr", "tile.splat", "tile.broadcast", "tile.expand_dims", "tile.reshape")
WRITES = ("tile.store", "tile.atomic_rmw", "tile.atomic_cas")


def owner(v: ir.Value):
    """The operation defining `v` (None for a block argument)."""
    if isinstance(v, ir.BlockArgument):
        return None
    o = v.owner
    return o.operation if hasattr(o, "operation") else o


def root(v: ir.Value):
    """The block argument a pointer (tile) derives from through addptr/splat/broadcast, else None."""
    while True:
        if isinstance(v, ir.BlockArgument):
            return v
        op = owner(v)
        if op.name not in POINTER_VIEWS:
            return None
        v = op.operands[0]


def ops_named(fn, names) -> list:
    """Every operation of `fn` (nested ones too) whose name is in `names`, in program order."""
    out = []

    def visit(o):
        if o.name in names:
            out.append(o)
        return ir.WalkResult.ADVANCE

    fn.operation.walk(visit)
    return out


def loads_of(fn, args) -> list:
    return [o for o in ops_named(fn, ("tile.load",)) if root(o.operands[0]) in args]


def writes_to(fn, arg) -> list:
    return [o for o in ops_named(fn, WRITES) if root(o.operands[0]) == arg]


def zeros(t: ir.Type) -> ir.Value:
    """A constant 0 of type `t` (a scalar or a tile)."""
    elem = tile.element_type(t)
    zero = ir.IntegerAttr.get(elem, 0) if isinstance(elem, ir.IntegerType) else ir.FloatAttr.get(elem, 0.0)
    if isinstance(t, ir.RankedTensorType):
        return arith.constant(t, ir.DenseElementsAttr.get_splat(t, zero))
    return arith.constant(t, zero)


def select(mask, value, other):
    """`mask ? value : other` (`other` 0 when None); `value` itself without a mask."""
    if mask is None:
        return value
    return arith.select(mask, value, other if other is not None else zeros(value.type))


def both(a, b):
    """a & b of two masks, either of which may be None (no mask)."""
    if a is None or b is None:
        return a if b is None else b
    return arith.andi(a, b)


def int_cast(v: ir.Value, elem: ir.Type) -> ir.Value:
    """Integer `v` (scalar or tile) with element type `elem` (sign-extended or truncated)."""
    have = tile.element_type(v.type)
    if have == elem:
        return v
    t = tile.tile_type(tile.shape_of(v.type), elem) if isinstance(v.type, ir.RankedTensorType) else elem
    wider = ir.IntegerType(elem).width > ir.IntegerType(have).width
    return arith.extsi(t, v) if wider else arith.trunci(t, v)


def _add(a, b):
    if a is None or b is None:
        return a if b is None else b
    wa, wb = (ir.IntegerType(tile.element_type(v.type)).width for v in (a, b))
    if wa != wb:
        wide = ir.IntegerType.get_signless(max(wa, wb))
        a, b = int_cast(a, wide), int_cast(b, wide)
    if isinstance(a.type, ir.RankedTensorType) != isinstance(b.type, ir.RankedTensorType):
        if isinstance(a.type, ir.RankedTensorType):
            b = tile.splat(b, tile.shape_of(a.type))
        else:
            a = tile.splat(a, tile.shape_of(b.type))
    return arith.addi(a, b)


def has_offsets(ptr: ir.Value, base: ir.Value) -> bool:
    """Whether `offsets(ptr, base)` can rebuild the element offsets of `ptr` from `base`."""
    while ptr != base:
        op = owner(ptr)
        if op is None or op.name not in POINTER_VIEWS or op.name == "tile.reshape":
            return False
        ptr = op.operands[0]
    return True


def offsets(ptr: ir.Value, base: ir.Value) -> ir.Value:
    """The element offsets from `base` that pointer tile `ptr` addresses, built at the insertion point
    from the same addptr/splat/broadcast/expand_dims steps over integers (has_offsets must hold)."""
    steps = []
    while ptr != base:
        op = owner(ptr)
        steps.append(op)
        ptr = op.operands[0]
    acc = None  # None: offset 0 so far
    for op in reversed(steps):
        shape = tile.shape_of(op.results[0].type)
        if op.name == "tile.addptr":
            acc = _add(acc, op.operands[1])
        elif acc is None:
            continue  # a view of offset 0 is offset 0
        elif op.name == "tile.splat":
            acc = tile.splat(acc, shape)
        elif op.name == "tile.broadcast":
            acc = tile.broadcast(acc, shape)
        else:  # tile.expand_dims
            acc = tile.expand_dims(acc, ir.IntegerAttr(op.attributes["axis"]).value)
    shape = tile.shape_of(steps[0].results[0].type) if steps else None
    if acc is None:
        return zeros(tile.tile_type(shape, ir.IntegerType.get_signless(32)) if shape else
                     ir.IntegerType.get_signless(32))
    if shape is not None and tile.shape_of(acc.type) != shape:
        acc = tile.splat(acc, shape) if tile.shape_of(acc.type) is None else tile.broadcast(acc, shape)
    return acc
