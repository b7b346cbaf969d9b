"""Typed values of the frontend and the semantics of operators on them.

A `TileValue` wraps an MLIR value with its Alloy dtype, its tile shape (None for a
scalar), whether it is a pointer, and a small symbolic form (`sym`) of integer
index arithmetic that the runtime uses to infer output shapes.

Python constants stay Python values until they meet a TileValue; then they adopt
the TileValue's type ("weak" literals, as in Triton).
"""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, math

from ..dialects import tile
from ..language import dtypes as dt


class SemanticError(Exception):
    """A type or shape error in kernel code (the caller adds file and line)."""


class TileValue:
    """A kernel value during code generation: its MLIR value, Alloy dtype, tile shape (None for a scalar),
    whether it is a pointer, and the symbolic form output-shape inference reads (`sym`)."""

    __slots__ = ("value", "dtype", "shape", "is_ptr", "sym")

    def __init__(self, value, dtype: dt.dtype, shape=None, is_ptr=False, sym=None):
        self.value, self.dtype, self.shape, self.is_ptr, self.sym = value, dtype, shape, is_ptr, sym

    @property
    def is_tile(self) -> bool:
        return self.shape is not None

    def describe(self) -> str:
        base = f"pointer<{self.dtype.name}>" if self.is_ptr else self.dtype.name
        return f"tile<{'x'.join(map(str, self.shape))}x{base}>" if self.is_tile else base


def ir_type(dtype: dt.dtype, shape=None, is_ptr=False) -> ir.Type:
    """The IR type of a value; `is_ptr` True for a pointer ("simd" for a SIMD-group matrix, a plain tensor)."""
    t = dtype.to_ir()
    if is_ptr is True:
        t = tile.ptr_type(t)
    return t if shape is None else tile.tile_type(shape, t)


def py_dtype(v) -> dt.dtype:
    """Default dtype of a Python constant."""
    if isinstance(v, bool):
        return dt.bool_
    if isinstance(v, int):
        return dt.int32 if -2**31 <= v < 2**31 else dt.int64
    if isinstance(v, float):
        return dt.float32
    raise SemanticError(f"cannot use a value of type {type(v).__name__} in kernel arithmetic")


def const(v, dtype: dt.dtype, shape=None) -> TileValue:
    scalar_t = dtype.to_ir()
    if dtype.is_float:
        attr = ir.FloatAttr.get(scalar_t, float(v))
    else:
        iv = int(v)
        if dtype.is_bool:
            iv = -1 if iv else 0  # i1 true prints as -1 in signless form
        elif dtype.bits < 64 and iv >= 2 ** (dtype.bits - 1):
            iv -= 2 ** dtype.bits
        attr = ir.IntegerAttr.get(scalar_t, iv)
    if shape is None:
        val = arith.ConstantOp(scalar_t, attr).result
    else:
        t = tile.tile_type(shape, scalar_t)
        val = arith.ConstantOp(t, ir.DenseElementsAttr.get_splat(t, attr)).result
    sym = ("const", v) if dtype.is_int else None
    return TileValue(val, dtype, shape, sym=sym)


def to_tv(x, like: TileValue | None = None) -> TileValue:
    """Materialise a Python constant, typed like `like` where sensible."""
    if isinstance(x, TileValue):
        return x
    if isinstance(like, TileValue) and not like.is_ptr:
        if isinstance(x, bool):
            d = dt.bool_ if like.dtype.is_bool else like.dtype
        elif isinstance(x, int):
            d = like.dtype if not like.dtype.is_bool else py_dtype(x)
        elif isinstance(x, float):
            d = like.dtype if like.dtype.is_float else dt.float32
        else:
            d = py_dtype(x)
    else:
        d = py_dtype(x)
    return const(x, d)


# ------------------------------------------------------------------ casts
def cast(x: TileValue, to: dt.dtype) -> TileValue:
    if x.is_ptr:
        raise SemanticError("cannot cast a pointer")
    fr = x.dtype
    if fr == to or (fr.bits == to.bits and fr.is_int and to.is_int and not fr.is_bool and not to.is_bool):
        return TileValue(x.value, to, x.shape, sym=x.sym) if fr != to else x
    rt = ir_type(to, x.shape)
    v = x.value
    if to.is_bool:
        zero = const(0, fr, x.shape)
        if fr.is_float:
            out = arith.cmpf(arith.CmpFPredicate.UNE, v, zero.value)
        else:
            out = arith.cmpi(arith.CmpIPredicate.ne, v, zero.value)
        return TileValue(out, to, x.shape)
    if fr.is_float and to.is_float:
        if fr.bits == to.bits:  # f16 <-> bf16 through f32
            return cast(cast(x, dt.float32), to)
        out = arith.extf(rt, v) if to.bits > fr.bits else arith.truncf(rt, v)
    elif fr.is_float:
        out = _float_to_int(x, to, rt)
    elif to.is_float:
        out = arith.sitofp(rt, v) if fr.is_signed else arith.uitofp(rt, v)
    else:
        if to.bits > fr.bits:
            out = arith.extsi(rt, v) if fr.is_signed else arith.extui(rt, v)
        else:
            out = arith.trunci(rt, v)
    return TileValue(out, to, x.shape, sym=x.sym if (fr.is_int and to.is_int) else None)


def _int_range(to: dt.dtype) -> tuple[int, int]:
    if to.is_signed:
        return -(1 << (to.bits - 1)), (1 << (to.bits - 1)) - 1
    return 0, (1 << to.bits) - 1


def _float_to_int(x: TileValue, to: dt.dtype, rt):
    """Saturating float -> int conversion (NaN -> 0, out-of-range -> the nearest bound), like CUDA's
    cvt.rzi.sat: LLVM's fptosi/fptoui of an out-of-range value is poison. The float is clamped to
    the largest float below the bound; a value past it gives the bound itself."""
    import ml_dtypes
    import numpy as np

    lo_i, hi_i = _int_range(to)
    npf = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float64": np.float64}.get(x.dtype.name, np.float32)
    finite = float(ml_dtypes.finfo(npf).max)
    hi = npf(hi_i)
    if int(hi) > hi_i:
        hi = np.nextafter(hi, npf(0))
    v = x.value
    if lo_i > -finite:
        v = arith.maxnumf(v, const(float(lo_i), x.dtype, x.shape).value)
    if float(hi) < finite:
        v = arith.minnumf(v, const(float(hi), x.dtype, x.shape).value)
    nan = arith.cmpf(arith.CmpFPredicate.UNO, x.value, x.value)
    v = arith.select(nan, const(0.0, x.dtype, x.shape).value, v)
    out = arith.fptosi(rt, v) if to.is_signed else arith.fptoui(rt, v)
    if float(hi) < finite and int(hi) < hi_i:
        above = arith.cmpf(arith.CmpFPredicate.OGT, x.value, const(float(hi), x.dtype, x.shape).value)
        out = arith.select(above, const(hi_i, to, x.shape).value, out)
    return out


# ------------------------------------------------------------- shapes
def broadcast_shapes(a, b):
    if a is None:
        return b
    if b is None:
        return a
    ra, rb = list(a), list(b)
    n = max(len(ra), len(rb))
    ra = [1] * (n - len(ra)) + ra
    rb = [1] * (n - len(rb)) + rb
    out = []
    for x, y in zip(ra, rb):
        if x != y and 1 not in (x, y):
            raise SemanticError(f"incompatible tile shapes {tuple(a)} and {tuple(b)}")
        out.append(max(x, y))
    return tuple(out)


def broadcast_to(x: TileValue, shape) -> TileValue:
    if shape is None or x.shape == tuple(shape):
        return x
    shape = tuple(shape)
    if x.shape is None:
        return TileValue(tile.splat(x.value, shape), x.dtype, shape, x.is_ptr, x.sym)
    v, cur = x.value, list(x.shape)
    while len(cur) < len(shape):
        v = tile.expand_dims(v, 0)
        cur.insert(0, 1)
    for c, s in zip(cur, shape):
        if c != s and c != 1:
            raise SemanticError(f"cannot broadcast tile of shape {x.shape} to {shape}")
    if tuple(cur) != shape:
        v = tile.broadcast(v, shape)
    return TileValue(v, x.dtype, shape, x.is_ptr, x.sym)


def expand_dims(x: TileValue, axis: int) -> TileValue:
    if x.shape is None:
        raise SemanticError("cannot index a scalar with None; make a tile first")
    rank = len(x.shape) + 1
    if not -rank <= axis < rank:
        raise SemanticError(f"expand_dims axis {axis} out of range for rank {len(x.shape)}")
    axis %= rank
    shape = list(x.shape)
    shape.insert(axis, 1)
    return TileValue(tile.expand_dims(x.value, axis), x.dtype, tuple(shape), x.is_ptr, x.sym)


# ------------------------------------------------------- binary operators
_INT_OPS = {
    "add": arith.addi, "sub": arith.subi, "mul": arith.muli,
    "and": arith.andi, "or": arith.ori, "xor": arith.xori, "shl": arith.shli,
}
_FLOAT_OPS = {"add": arith.addf, "sub": arith.subf, "mul": arith.mulf, "truediv": arith.divf,
              "mod": arith.remf}
_CMP_I = {"lt": ("slt", "ult"), "le": ("sle", "ule"), "gt": ("sgt", "ugt"), "ge": ("sge", "uge"),
          "eq": ("eq", "eq"), "ne": ("ne", "ne")}
_CMP_F = {"lt": "OLT", "le": "OLE", "gt": "OGT", "ge": "OGE", "eq": "OEQ", "ne": "UNE"}


def _unify(a, b):
    """Bring two operands (TileValue or Python constants) to one dtype and shape."""
    if not isinstance(a, TileValue):
        a = to_tv(a, b)
    if not isinstance(b, TileValue):
        b = to_tv(b, a)
    d = dt.promote(a.dtype, b.dtype)
    shape = broadcast_shapes(a.shape, b.shape)
    return broadcast_to(cast(a, d), shape), broadcast_to(cast(b, d), shape), d, shape


def ptr_offset(p: TileValue, off, negate=False) -> TileValue:
    """`p + off` for a pointer (scalar or tile) and an integer offset."""
    off = to_tv(off) if not isinstance(off, TileValue) else off
    if off.is_ptr or not off.dtype.is_int:
        raise SemanticError(f"pointer arithmetic needs an integer offset, got {off.describe()}")
    if negate:
        off = binary("sub", 0, off)
    if off.dtype.is_bool:
        off = cast(off, dt.int32)
    shape = broadcast_shapes(p.shape, off.shape)
    pb, ob = broadcast_to(p, shape), broadcast_to(off, shape)
    sym = None
    if p.sym is not None:  # ("ptr", base parameter, element offset or None)
        off_sym = ("add", p.sym[2], ob.sym) if p.sym[2] is not None and ob.sym is not None else None
        sym = ("ptr", p.sym[1], off_sym)
    return TileValue(tile.addptr(pb.value, ob.value), p.dtype, shape, True, sym)


def binary(op: str, a, b) -> TileValue:
    a_ptr = isinstance(a, TileValue) and a.is_ptr
    b_ptr = isinstance(b, TileValue) and b.is_ptr
    if a_ptr or b_ptr:
        if op == "add":
            return ptr_offset(a, b) if a_ptr else ptr_offset(b, a)
        if op == "sub" and a_ptr and not b_ptr:
            return ptr_offset(a, b, negate=True)
        raise SemanticError(f"unsupported operator '{op}' on pointers")
    if op == "truediv":
        a, b, d, shape = _unify(a, b)
        if not d.is_float:
            a, b, d = cast(a, dt.float32), cast(b, dt.float32), dt.float32
        return TileValue(arith.divf(a.value, b.value), d, shape)
    if op == "pow":
        a, b, d, shape = _unify(a, b)
        if not d.is_float:
            raise SemanticError("** needs float operands")
        return TileValue(math.powf(a.value, b.value), d, shape)
    a, b, d, shape = _unify(a, b)
    sym = (op, a.sym, b.sym) if a.sym is not None and b.sym is not None else None
    va, vb = a.value, b.value
    if op in _CMP_I:
        if d.is_float:
            pred = getattr(arith.CmpFPredicate, _CMP_F[op])
            return TileValue(arith.cmpf(pred, va, vb), dt.bool_, shape, sym=sym)
        pred = _CMP_I[op][0 if d.is_signed else 1]
        return TileValue(arith.cmpi(getattr(arith.CmpIPredicate, pred), va, vb), dt.bool_, shape, sym=sym)
    if d.is_float:
        if op not in _FLOAT_OPS:
            if op == "floordiv":
                return unary_math("floor", TileValue(arith.divf(va, vb), d, shape))
            raise SemanticError(f"operator '{op}' is not defined for {d.name}")
        if op == "mod":  # Python semantics: result has the sign of the divisor
            r = TileValue(arith.remf(va, vb), d, shape)
            fix = binary("and", binary("ne", r, 0.0), binary("ne", binary("lt", r, 0.0), binary("lt", b, 0.0)))
            return where(fix, binary("add", r, b), r)
        return TileValue(_FLOAT_OPS[op](va, vb), d, shape)
    if op in _INT_OPS:
        if d.is_bool and op in ("add", "sub", "mul"):
            a, b = cast(a, dt.int32), cast(b, dt.int32)
            return binary(op, a, b)
        return TileValue(_INT_OPS[op](va, vb), d, shape, sym=sym)
    if op == "shr":
        f = arith.shrsi if d.is_signed else arith.shrui
        return TileValue(f(va, vb), d, shape)
    if op == "floordiv":
        f = arith.floordivsi if d.is_signed else arith.divui
        return TileValue(f(va, vb), d, shape, sym=("floordiv", a.sym, b.sym) if sym else None)
    if op == "mod":
        if not d.is_signed:
            return TileValue(arith.remui(va, vb), d, shape, sym=sym)
        r = TileValue(arith.remsi(va, vb), d, shape)
        fix = binary("and", binary("ne", r, 0), binary("ne", binary("lt", r, 0), binary("lt", b, 0)))
        out = where(fix, binary("add", r, b), r)
        out.sym = sym
        return out
    raise SemanticError(f"unsupported operator '{op}'")


def where(c, a, b) -> TileValue:
    c = to_tv(c)
    if not c.dtype.is_bool:
        c = cast(c, dt.bool_)
    if isinstance(a, TileValue) and a.is_ptr or isinstance(b, TileValue) and b.is_ptr:
        raise SemanticError("where() on pointers is not supported")
    a, b, d, shape = _unify(a, b)
    shape = broadcast_shapes(shape, c.shape)
    a, b, c = broadcast_to(a, shape), broadcast_to(b, shape), broadcast_to(c, shape)
    return TileValue(arith.select(c.value, a.value, b.value), d, shape)


def neg(x: TileValue) -> TileValue:
    if x.dtype.is_float:
        return TileValue(arith.negf(x.value), x.dtype, x.shape)
    out = binary("sub", 0, x)
    return out


def invert(x: TileValue) -> TileValue:
    if not x.dtype.is_int:
        raise SemanticError("~ needs an integer or bool operand")
    return binary("xor", x, -1 if not x.dtype.is_bool else True)


def logical_not(x: TileValue) -> TileValue:
    return binary("xor", cast(x, dt.bool_), True)


def maximum(a, b, kind="max") -> TileValue:
    a, b, d, shape = _unify(a, b)
    if d.is_float:
        f = arith.maximumf if kind == "max" else arith.minimumf
    elif d.is_signed:
        f = arith.maxsi if kind == "max" else arith.minsi
    else:
        f = arith.maxui if kind == "max" else arith.minui
    return TileValue(f(a.value, b.value), d, shape)


_MATH = {"exp": math.exp, "exp2": math.exp2, "log": math.log, "log2": math.log2, "sqrt": math.sqrt,
         "rsqrt": math.rsqrt, "sin": math.sin, "cos": math.cos, "tanh": math.tanh, "erf": math.erf,
         "floor": math.floor, "ceil": math.ceil}


def unary_math(name: str, x) -> TileValue:
    x = to_tv(x)
    if name == "abs":
        if x.dtype.is_float:
            return TileValue(math.absf(x.value), x.dtype, x.shape)
        return TileValue(math.absi(x.value), x.dtype, x.shape) if x.dtype.is_signed else x
    if not x.dtype.is_float:
        x = cast(x, dt.float32)
    if name == "sigmoid":
        e = unary_math("exp", neg(x))
        return binary("truediv", 1.0, binary("add", 1.0, e))
    return TileValue(_MATH[name](x.value), x.dtype, x.shape)


def fma(a, b, c) -> TileValue:
    a, b, d, shape = _unify(a, b)
    a, c, d, shape = _unify(a, c)
    b = broadcast_to(cast(b, d), shape)
    if not d.is_float:
        return binary("add", binary("mul", a, b), c)
    return TileValue(math.fma(a.value, b.value, c.value), d, shape)


class ArrayArg:
    """An array parameter inside the kernel: its base pointer and shape."""

    def __init__(self, name, ptr: TileValue, shape: tuple):
        self.name, self.ptr, self.shape = name, ptr, shape
        self.dtype = ptr.dtype


class StoreRecord:
    """A store (or atomic) to an output parameter, for output inference."""

    def __init__(self, param, offset_sym, mask_sym, dtype, shape):
        self.param, self.offset_sym, self.mask_sym, self.dtype, self.shape = param, offset_sym, mask_sym, dtype, shape


class ThreadArray:
    """An `al.shared` / `al.local` array: its memref value, dtype, element count and space."""

    def __init__(self, value, dtype: dt.dtype, size: int, space: str):
        self.value, self.dtype, self.size, self.space = value, dtype, size, space

    def describe(self) -> str:
        return f"{self.space} array<{self.size}x{self.dtype.name}>"


class SimdMatrix:
    """An 8x8 SIMD-group matrix (`al.simd_matrix`, `al.simd_load`, `al.simd_mma`): its tensor value and dtype."""

    def __init__(self, value, dtype: dt.dtype):
        self.value, self.dtype = value, dtype

    def describe(self) -> str:
        return f"simd_matrix<8x8x{self.dtype.name}>"
