"""tile-verify: the type rules of the tile ops that IRDL cannot state here.

The IRDL definition (dialects/tile.py) constrains what it can: attribute
kinds, tensor-only operands and results. Operands that may be a scalar or a
tile (pointers, offsets, masks, stored values) stay `irdl.any` there, because
MLIR 22's IRDL loader aborts on `irdl.any_of` over `irdl.base` constraints.
This pass checks the rest, op by op, and raises LoweringError naming the op,
its kernel source location and the offending operand:

    addptr       ptr is a pointer or pointer tile, offset an integer (tile); tiles share the result's shape
    load         ptr a pointer (tile); result = pointee in ptr's shape; mask i1 in that shape; other = result
    store        value = pointee in ptr's shape (a scalar value broadcasts); mask i1 in ptr's shape
    atomic_rmw   as store; kind add/max/min/xchg; result = value type (which element types a target's
                 atomics support, its lowering says)
    atomic_cas   cmp, value and result: the pointee type in ptr's shape
    splat, broadcast, expand_dims, reshape, trans, reduce, dot, arange: element types and shapes agree

In a SIMT kernel (one that uses thread-level ops, dialects/tile.py) tiles are
not mixed in: tensors are SIMD-group matrices, made and used by the simd ops
alone; and sync ops (barrier, shuffle, reduce) sit under uniform control flow
only (passes/uniformity.py).

Every target pipeline runs it first; alloy-opt runs it by name.
"""
from __future__ import annotations

import math

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.uniformity import check_sync_placement, is_simt_kernel


def _shape(t: ir.Type):
    return tuple(t.shape) if isinstance(t, ir.RankedTensorType) else None


def _elem(t: ir.Type) -> ir.Type:
    return t.element_type if isinstance(t, ir.RankedTensorType) else t


def _pointee(op, v: ir.Value, what: str) -> ir.Type:
    e = _elem(v.type)
    if not tile.is_ptr(e):
        raise LoweringError(f"{what} must be a !tile.ptr or a tile of them, got {v.type}", op)
    return tile.ptr_elem(e)


def _is_int(t: ir.Type) -> bool:
    return isinstance(t, ir.IntegerType) or isinstance(t, ir.IndexType)


def _expect(op, got: ir.Type, want_elem: ir.Type, want_shape, what: str) -> None:
    if _elem(got) != want_elem or _shape(got) != want_shape:
        want = f"tensor<{'x'.join(map(str, want_shape))}x{want_elem}>" if want_shape is not None else str(want_elem)
        raise LoweringError(f"{what} must be {want}, got {got}", op)


def _mask(op, mask, shape) -> None:
    if mask is not None:
        _expect(op, mask.type, ir.IntegerType.get_signless(1), shape, "mask")


def _addptr(op) -> None:
    ptr, off = op.operands
    elem = _pointee(op, ptr, "the pointer operand")
    if not _is_int(_elem(off.type)):
        raise LoweringError(f"the offset must be an integer or an integer tile, got {off.type}", op)
    shape = _shape(op.results[0].type)
    for v, what in ((ptr, "the pointer operand"), (off, "the offset")):
        if _shape(v.type) not in (None, shape):
            raise LoweringError(f"{what} has shape {_shape(v.type)}; the result's is {shape}", op)
    _expect(op, op.results[0].type, tile.ptr_type(elem), shape, "the result")


def _load(op) -> None:
    ptr, mask, other = tile.load_operands(op)
    elem, shape = _pointee(op, ptr, "the pointer operand"), _shape(ptr.type)
    _expect(op, op.results[0].type, elem, shape, "the result")
    _mask(op, mask, shape)
    if other is not None:
        _expect(op, other.type, elem, shape, "'other'")


def _stored(op, ptr, value, mask) -> ir.Type:
    elem, shape = _pointee(op, ptr, "the pointer operand"), _shape(ptr.type)
    if _shape(value.type) is not None or shape is None:
        _expect(op, value.type, elem, shape, "the stored value")
    elif _elem(value.type) != elem:
        raise LoweringError(f"the stored value must be {elem}, got {value.type}", op)
    _mask(op, mask, shape)
    return elem


def _store(op) -> None:
    ptr, value = op.operands[0], op.operands[1]
    _stored(op, ptr, value, op.operands[2] if len(op.operands) > 2 else None)


def _atomic_rmw(op) -> None:
    ptr, value = op.operands[0], op.operands[1]
    elem = _stored(op, ptr, value, op.operands[2] if len(op.operands) > 2 else None)
    kind = ir.StringAttr(op.attributes["kind"]).value
    if kind not in tile.ATOMIC_KINDS:
        raise LoweringError(f"unknown atomic kind '{kind}'; expected one of {', '.join(tile.ATOMIC_KINDS)}", op)
    _expect(op, op.results[0].type, elem, _shape(ptr.type), "the result")


def _atomic_cas(op) -> None:
    ptr, cmp, value = op.operands
    elem, shape = _pointee(op, ptr, "the pointer operand"), _shape(ptr.type)
    for v, what in ((cmp, "'cmp'"), (value, "'value'"), (op.results[0], "the result")):
        _expect(op, v.type, elem, shape, what)


def _same_elem(op) -> None:
    src, res = op.operands[0].type, op.results[0].type
    if _elem(src) != _elem(res):
        raise LoweringError(f"element types differ: {src} -> {res}", op)
    name = op.operation.name
    s, r = _shape(src), _shape(res)
    if name == "tile.reshape" and math.prod(s) != math.prod(r):
        raise LoweringError(f"reshape changes the element count: {src} -> {res}", op)
    if name == "tile.trans" and (len(s) != 2 or r != (s[1], s[0])):
        raise LoweringError(f"trans needs a 2-D tile and gives it transposed: {src} -> {res}", op)
    if name == "tile.expand_dims":
        axis = ir.IntegerAttr(op.attributes["axis"]).value
        if not 0 <= axis <= len(s) or r != s[:axis] + (1,) + s[axis:]:
            raise LoweringError(f"expand_dims at axis {axis}: {src} -> {res}", op)
    if name == "tile.broadcast":
        pad = (1,) * (len(r) - len(s)) + s if len(r) >= len(s) else None
        if pad is None or any(a not in (1, b) for a, b in zip(pad, r)):
            raise LoweringError(f"cannot broadcast {src} to {res}", op)
    if name == "tile.splat" and _shape(src) is not None:
        raise LoweringError(f"splat takes a scalar, got {src}", op)


def _reduce(op) -> None:
    src, res = op.operands[0].type, op.results[0].type
    s = _shape(src)
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    kind = ir.StringAttr(op.attributes["kind"]).value
    if kind not in tile.REDUCE_KINDS:
        raise LoweringError(f"unknown reduction '{kind}'; expected one of {', '.join(tile.REDUCE_KINDS)}", op)
    if not 0 <= axis < len(s):
        raise LoweringError(f"axis {axis} out of range for {src}", op)
    rest = s[:axis] + s[axis + 1:]
    elem = ir.IntegerType.get_signless(32) if kind in ("argmax", "argmin") else _elem(src)
    _expect(op, res, elem, rest or None, "the result")


def _dot(op) -> None:
    a, b, c = (_shape(v.type) for v in op.operands)
    if len(a) != 2 or len(b) != 2 or a[1] != b[0] or c != (a[0], b[1]):
        raise LoweringError(f"dot shapes do not agree: {a} @ {b} + {c}", op)
    if op.results[0].type != op.operands[2].type:
        raise LoweringError(f"the result must have the accumulator's type {op.operands[2].type}, "
                            f"got {op.results[0].type}", op)


def _arange(op) -> None:
    start = ir.IntegerAttr(op.attributes["start"]).value
    end = ir.IntegerAttr(op.attributes["end"]).value
    if end <= start:
        raise LoweringError(f"arange({start}, {end}) is empty", op)
    _expect(op, op.results[0].type, ir.IntegerType.get_signless(32), (end - start,), "the result")


RULES = {
    "tile.addptr": _addptr, "tile.load": _load, "tile.store": _store, "tile.atomic_rmw": _atomic_rmw,
    "tile.atomic_cas": _atomic_cas, "tile.splat": _same_elem, "tile.broadcast": _same_elem,
    "tile.expand_dims": _same_elem, "tile.reshape": _same_elem, "tile.trans": _same_elem,
    "tile.reduce": _reduce, "tile.dot": _dot, "tile.arange": _arange,
}


def tile_verify(op, target=None) -> None:
    """Pass: check every tile op of the module's kernels against RULES (see the module docstring)."""
    module_op = op.operation if hasattr(op, "operation") else op
    checked = []  # collected first: an exception inside a walk callback reaches the caller as RuntimeError

    def visit(o):
        if o.name in RULES:
            checked.append(o.opview)
        return ir.WalkResult.ADVANCE

    with module_op.context:
        funcs = tile.kernel_funcs(module_op)
        for f in funcs:
            f.operation.walk(visit)
        for o in checked:
            RULES[o.operation.name](o)
        for f in funcs:
            if is_simt_kernel(f):
                _simt_kernel(f)


_MATRIX_OPS = frozenset({"tile.simd_fill", "tile.simd_load", "tile.simd_mma", "tile.simd_store"})


def _simt_kernel(func) -> None:
    """No tiles besides SIMD-group matrices; sync ops under uniform control flow only."""
    bad = []

    def visit(o):
        if o.name in _MATRIX_OPS or o.name.startswith("scf."):
            return ir.WalkResult.ADVANCE
        types = [v.type for v in o.operands] + [r.type for r in o.results]
        if any(isinstance(t, ir.RankedTensorType) for t in types):
            bad.append(o)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    func.operation.walk(visit)
    if bad:
        raise LoweringError("tiles (al.arange, al.zeros, tile loads and arithmetic) cannot be used in a kernel "
                            "that uses thread-level primitives (al.thread_id, al.shared, al.simd_*); write it "
                            "per thread, or as a tile kernel", bad[0])
    check_sync_placement(func)
