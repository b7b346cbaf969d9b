"""Code generation for the `al.*` builtins.

Each implementation takes the code generator, then the call's arguments
exactly as the user wrote them (Python constants, TVs, array parameters).
"""
from __future__ import annotations

from ..dialects import tile
from ..language import dtypes as dt
from . import values as V
from .values import ArrayArg, StoreRecord

UNKNOWN_PARAM = "?"  # a store through a pointer whose parameter the frontend cannot name


def _ptr(gen, p, what):
    if isinstance(p, ArrayArg):
        return p.ptr
    if isinstance(p, V.TileValue) and p.is_ptr:
        return p
    raise V.SemanticError(f"{what} needs a pointer (an array parameter plus offsets), got "
                          f"{p.describe() if isinstance(p, V.TileValue) else type(p).__name__}")


def _int_const(v, what):
    if isinstance(v, V.TileValue) or not isinstance(v, int):
        raise V.SemanticError(f"{what} must be a compile-time integer (a literal or al.constexpr)")
    return v


def _shape(shape, what):
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise V.SemanticError(f"{what} must be a tuple of compile-time integers")
    return tuple(_int_const(s, what) for s in shape)


def _dtype(d, default=dt.float32):
    if d is None:
        return default
    if not isinstance(d, dt.dtype):
        raise V.SemanticError(f"expected an al dtype (e.g. al.float32), got {d!r}")
    return d


# ------------------------------------------------------------------ indexing
def program_id(gen, axis=0):
    axis = _int_const(axis, "program_id axis")
    if axis not in (0, 1, 2):
        raise V.SemanticError("program_id axis must be 0, 1 or 2")
    return V.TileValue(tile.program_id(axis), dt.int32, sym=("pid", axis))


def num_programs(gen, axis=0):
    axis = _int_const(axis, "num_programs axis")
    if axis not in (0, 1, 2):
        raise V.SemanticError("num_programs axis must be 0, 1 or 2")
    return V.TileValue(tile.num_programs(axis), dt.int32, sym=("nprog", axis))


def arange(gen, start, end=None):
    if end is None:
        start, end = 0, start
    start, end = _int_const(start, "arange start"), _int_const(end, "arange end")
    if end <= start:
        raise V.SemanticError(f"arange({start}, {end}) is empty")
    return V.TileValue(tile.arange(start, end), dt.int32, (end - start,), sym=("arange", start, end))


def full(gen, shape, value, dtype=None):
    shape = _shape(shape, "full() shape")
    if isinstance(value, V.TileValue):
        d = _dtype(dtype, value.dtype)
        return V.broadcast_to(V.cast(value, d), shape)
    d = _dtype(dtype, V.py_dtype(value))
    return V.const(value, d, shape)


def zeros(gen, shape, dtype=None):
    return full(gen, shape, 0, dtype or dt.float32)


# ------------------------------------------------------------------ memory
def _record(gen, ptr, value_dtype, mask, shape):
    sym = ptr.sym
    if not sym or sym[0] != "ptr":
        gen.written.add(UNKNOWN_PARAM)
        return
    name = sym[1]
    gen.written.add(name)
    spec = {a.name: a for a in gen.spec.args}
    if spec.get(name) is None or spec[name].kind != "output":
        return
    gen.stored_dtypes.setdefault(name, value_dtype)
    mask_sym = mask.sym if isinstance(mask, V.TileValue) else mask
    gen.stores.append(StoreRecord(name, sym[2], mask_sym, value_dtype, shape))


def _mask(mask, shape):
    if mask is None:
        return None
    m = V.to_tv(mask)
    if not m.dtype.is_bool:
        m = V.cast(m, dt.bool_)
    return V.broadcast_to(m, shape)


def _align(p, shape_from):
    """Broadcast a pointer to the shape of a tile operand (scalar pointer + tile value)."""
    shape = V.broadcast_shapes(p.shape, shape_from)
    return V.broadcast_to(p, shape)


def load(gen, pointer, mask=None, other=None, **kw):
    if kw:
        raise V.SemanticError(f"al.load got unsupported arguments {sorted(kw)}")
    p = _ptr(gen, pointer, "al.load")
    if isinstance(mask, V.TileValue) and mask.is_tile:
        p = _align(p, mask.shape)
    m = _mask(mask, p.shape)
    o = None
    if other is not None:
        if m is None:
            raise V.SemanticError("al.load: 'other' needs a 'mask'")
        o = V.broadcast_to(V.cast(V.to_tv(other, V.TileValue(None, p.dtype)), p.dtype), p.shape)
    v = tile.load(p.value, m.value if m else None, o.value if o else None)
    return V.TileValue(v, p.dtype, p.shape)


def store(gen, pointer, value, mask=None, **kw):
    if kw:
        raise V.SemanticError(f"al.store got unsupported arguments {sorted(kw)}")
    p = _ptr(gen, pointer, "al.store")
    value = gen.operand(value, gen.node)
    if isinstance(value, V.TileValue) and value.is_tile:
        p = _align(p, value.shape)
    if isinstance(mask, V.TileValue) and mask.is_tile:
        p = _align(p, mask.shape)
    vt = V.to_tv(value, V.TileValue(None, p.dtype))
    _record(gen, p, vt.dtype, mask, p.shape)
    v = V.broadcast_to(V.cast(vt, p.dtype), p.shape)
    m = _mask(mask, p.shape)
    tile.store(p.value, v.value, m.value if m else None)


def _atomic(kind):
    def impl(gen, pointer, *args, mask=None):
        if len(args) == 2:  # al.atomic_add(ptr, idx, val) — the spec's form
            pointer = V.binary("add", _ptr(gen, pointer, f"al.atomic_{kind}"), args[0])
            args = args[1:]
        if len(args) != 1:
            raise V.SemanticError(f"al.atomic_{kind} takes (ptr, value) or (ptr, index, value)")
        p = _ptr(gen, pointer, f"al.atomic_{kind}")
        val = gen.operand(args[0], gen.node)
        if isinstance(val, V.TileValue) and val.is_tile:
            p = _align(p, val.shape)
        vt = V.to_tv(val, V.TileValue(None, p.dtype))
        if p.dtype not in (dt.int32, dt.float32, dt.int64, dt.uint32):
            raise V.SemanticError(f"atomics support int32, uint32, int64 and float32 pointers, not {p.dtype.name}")
        _record(gen, p, vt.dtype, mask, p.shape)
        v = V.broadcast_to(V.cast(vt, p.dtype), p.shape)
        m = _mask(mask, p.shape)
        return V.TileValue(tile.atomic_rmw(kind, p.value, v.value, m.value if m else None), p.dtype, p.shape)
    return impl


def atomic_cas(gen, pointer, *args):
    if len(args) == 3:
        pointer = V.binary("add", _ptr(gen, pointer, "al.atomic_cas"), args[0])
        args = args[1:]
    if len(args) != 2:
        raise V.SemanticError("al.atomic_cas takes (ptr, expected, desired) or (ptr, index, expected, desired)")
    p = _ptr(gen, pointer, "al.atomic_cas")
    if p.is_tile:
        raise V.SemanticError("al.atomic_cas works on one element (a scalar pointer)")
    cmp = V.cast(V.to_tv(args[0], V.TileValue(None, p.dtype)), p.dtype)
    val = V.cast(V.to_tv(args[1], V.TileValue(None, p.dtype)), p.dtype)
    _record(gen, p, val.dtype, None, None)
    return V.TileValue(tile.atomic_cas(p.value, cmp.value, val.value), p.dtype)


# ------------------------------------------------------------------ shapes
def expand_dims(gen, x, axis):
    return V.expand_dims(gen.operand(x, gen.node), _int_const(axis, "expand_dims axis"))


def broadcast_to(gen, x, shape):
    return V.broadcast_to(V.to_tv(gen.operand(x, gen.node)), _shape(shape, "broadcast_to shape"))


def reshape(gen, x, shape):
    x = gen.operand(x, gen.node)
    shape = _shape(shape, "reshape shape")
    n_in = 1
    for s in x.shape or ():
        n_in *= s
    n_out = 1
    for s in shape:
        n_out *= s
    if n_in != n_out:
        raise V.SemanticError(f"cannot reshape a tile of shape {x.shape} to {shape}")
    return V.TileValue(tile.reshape(x.value, shape), x.dtype, shape, x.is_ptr)


def trans(gen, x):
    x = gen.operand(x, gen.node)
    if not x.is_tile or len(x.shape) != 2:
        raise V.SemanticError("al.trans needs a 2-D tile")
    return V.TileValue(tile.trans(x.value), x.dtype, (x.shape[1], x.shape[0]), x.is_ptr)


# ------------------------------------------------------------------ reductions
def _reduce(kind):
    def impl(gen, x, axis=None, keepdims=False):
        x = V.to_tv(gen.operand(x, gen.node))
        if not x.is_tile:
            raise V.SemanticError(f"al.{kind} needs a tile")
        if kind == "sum" and (x.dtype.is_bool or (x.dtype.is_int and x.dtype.bits < 32)):
            x = V.cast(x, dt.int32)
        if kind == "sum" and x.dtype.is_float and x.dtype.bits < 32:
            x = V.cast(x, dt.float32)
        rank = len(x.shape)
        if axis is None:
            if kind in ("argmax", "argmin") and rank != 1:
                raise V.SemanticError(f"al.{kind} over all axes needs a 1-D tile; pass axis=")
            axes = list(range(rank))
        else:
            a = _int_const(axis, f"al.{kind} axis")
            if not -rank <= a < rank:
                raise V.SemanticError(f"axis {a} out of range for a tile of rank {rank}")
            axes = [a % rank]
        out = x
        for a in sorted(axes, reverse=True):
            shape = list(out.shape)
            del shape[a]
            d = dt.int32 if kind in ("argmax", "argmin") else out.dtype
            out = V.TileValue(tile.reduce(out.value, a, kind), d, tuple(shape) if shape else None)
            if keepdims:
                out = V.expand_dims(out, a) if out.is_tile else V.broadcast_to(out, (1,))
        return out
    return impl


def _max_or_reduce(kind):
    red = _reduce(kind)

    def impl(gen, x, *rest, axis=None, keepdims=False):
        if rest:  # al.max(a, b) reads as maximum
            out = gen.operand(x, gen.node)
            for r in rest:
                out = V.maximum(out, gen.operand(r, gen.node), kind)
            return out
        return red(gen, x, axis, keepdims)
    return impl


# ------------------------------------------------------------------ math
def _math(name):
    def impl(gen, x):
        return V.unary_math(name, gen.operand(x, gen.node))
    return impl


def maximum(gen, a, b):
    return V.maximum(gen.operand(a, gen.node), gen.operand(b, gen.node), "max")


def minimum(gen, a, b):
    return V.maximum(gen.operand(a, gen.node), gen.operand(b, gen.node), "min")


def where(gen, condition, a, b):
    return V.where(gen.operand(condition, gen.node), gen.operand(a, gen.node), gen.operand(b, gen.node))


def fma(gen, a, b, c):
    return V.fma(*(gen.operand(v, gen.node) for v in (a, b, c)))


def cast(gen, x, dtype):
    d = _dtype(dtype)
    x = gen.operand(x, gen.node)
    return V.cast(V.to_tv(x) if not isinstance(x, V.TileValue) else x, d)


def cdiv(gen, a, b):
    if not isinstance(a, V.TileValue) and not isinstance(b, V.TileValue):
        return -(-a // b)
    return V.binary("floordiv", V.binary("sub", V.binary("add", a, b), 1), b)


def tile_dot(gen, a, b, acc=None, transpose_rhs=False, transpose_lhs=False):
    a, b = gen.operand(a, gen.node), gen.operand(b, gen.node)
    for x, n in ((a, "a"), (b, "b")):
        if not isinstance(x, V.TileValue) or not x.is_tile or len(x.shape) != 2:
            raise V.SemanticError(f"al.tile_dot operand '{n}' must be a 2-D tile")
    if transpose_lhs:
        a = trans(gen, a)
    if transpose_rhs:
        b = trans(gen, b)
    (m, k), (k2, n) = a.shape, b.shape
    if k != k2:
        raise V.SemanticError(f"al.tile_dot shapes do not agree: {a.shape} @ {b.shape}")
    d = dt.promote(a.dtype, b.dtype)
    if not d.is_float:
        a, b = V.cast(a, dt.float32), V.cast(b, dt.float32)
    if acc is None:
        accv = V.const(0.0, dt.float32, (m, n))
    else:
        accv = V.broadcast_to(V.cast(V.to_tv(gen.operand(acc, gen.node)), dt.float32), (m, n))
    return V.TileValue(tile.dot(a.value, b.value, accv.value), dt.float32, (m, n))


def static_range(gen, *args):
    raise V.SemanticError("al.static_range can only be used as a for-loop iterator")


BUILTINS = {
    "program_id": program_id, "num_programs": num_programs, "arange": arange, "zeros": zeros, "full": full,
    "load": load, "store": store, "atomic_add": _atomic("add"), "atomic_max": _atomic("max"),
    "atomic_min": _atomic("min"), "atomic_xchg": _atomic("xchg"), "atomic_cas": atomic_cas,
    "expand_dims": expand_dims, "broadcast_to": broadcast_to, "reshape": reshape, "trans": trans,
    "sum": _reduce("sum"), "max": _max_or_reduce("max"), "min": _max_or_reduce("min"),
    "argmax": _reduce("argmax"), "argmin": _reduce("argmin"),
    "maximum": maximum, "minimum": minimum, "where": where, "fma": fma, "cast": cast, "cdiv": cdiv,
    "tile_dot": tile_dot, "dot": tile_dot, "static_range": static_range,
}
from .simt_builtins import SIMT_BUILTINS  # noqa: E402  (the thread-level builtins)

BUILTINS.update(SIMT_BUILTINS)
for _n in ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "erf", "sigmoid",
           "abs", "floor", "ceil"):
    BUILTINS[_n] = _math(_n)
