"""Expression evaluation for the code generator.

Every expression evaluates to a Python constant (folded at compile time), a
`TileValue`, an array parameter, a tuple, or a callable (builtin, @al.func, Python
builtin).
"""
from __future__ import annotations

import ast
import builtins as py_builtins
import operator

from ..language import dtypes as dt
from . import values as V
from .values import ArrayArg

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "truediv", ast.FloorDiv: "floordiv",
           ast.Mod: "mod", ast.Pow: "pow", ast.BitAnd: "and", ast.BitOr: "or", ast.BitXor: "xor",
           ast.LShift: "shl", ast.RShift: "shr"}
_PY_BINOPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "truediv": operator.truediv,
              "floordiv": operator.floordiv, "mod": operator.mod, "pow": operator.pow, "and": operator.and_,
              "or": operator.or_, "xor": operator.xor, "shl": operator.lshift, "shr": operator.rshift}
_CMPOPS = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
_PY_CMP = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq,
           "ne": operator.ne}
_CONST_TYPES = (bool, int, float, type(None), str, dt.dtype)


def _is_const(v):
    return isinstance(v, _CONST_TYPES)


class ExpressionMixin:
    def eval(self, node):
        saved = self.node
        self.node = node
        try:
            m = getattr(self, "expr_" + type(node).__name__, None)
            if m is None:
                raise self.error(f"unsupported expression '{type(node).__name__}' in kernels", node)
            try:
                with self._src_stack[-1].location(node):
                    return m(node)
            except V.SemanticError as e:
                raise self.error(str(e), node) from None
        finally:
            self.node = saved

    # -------------------------------------------------------------- leaves
    def expr_Constant(self, n):
        return n.value

    def expr_Name(self, n):
        return self.lookup(n.id, n)

    def expr_Tuple(self, n):
        return tuple(self.eval(e) for e in n.elts)

    expr_List = expr_Tuple

    def expr_Attribute(self, n):
        base = self.eval(n.value)

        if isinstance(base, ArrayArg):
            if n.attr == "shape":
                if base.shape is None:
                    raise self.error(f"the shape of output '{base.name}' is not known inside the kernel", n)
                return base.shape
            if n.attr == "dtype":
                return base.dtype
            raise self.error(f"array parameter has no attribute '{n.attr}'", n)
        if isinstance(base, V.TileValue):
            if n.attr == "shape":
                return base.shape if base.shape is not None else ()
            if n.attr == "dtype":
                return base.dtype
            if n.attr in ("to", "__cast__"):
                return ("method", "to", base)
            raise self.error(f"tile values have no attribute '{n.attr}'", n)
        try:
            return getattr(base, n.attr)
        except AttributeError:
            raise self.error(f"'{getattr(base, '__name__', type(base).__name__)}' has no attribute '{n.attr}'",
                             n) from None

    # -------------------------------------------------------------- operators
    def operand(self, v, node):

        if isinstance(v, ArrayArg):
            return v.ptr
        if isinstance(v, (V.TileValue, bool, int, float)):
            return v
        if isinstance(v, (V.ThreadArray, V.SimdMatrix)):
            what = "index it (buf[i])" if isinstance(v, V.ThreadArray) else "use the al.simd_* builtins"
            raise self.error(f"a {v.describe()} is not a value in arithmetic; {what}", node)
        raise self.error(f"cannot use a value of type {type(v).__name__} here", node)

    def binop(self, op, a, b, node):
        name = _BINOPS.get(type(op))
        if name is None:
            raise self.error(f"unsupported operator {type(op).__name__}", node)
        a, b = self.operand(a, node), self.operand(b, node)
        if _is_const(a) and _is_const(b):
            try:
                return _PY_BINOPS[name](a, b)
            except Exception as e:
                raise self.error(f"constant expression failed: {e}", node) from None
        return V.binary(name, a, b)

    def expr_BinOp(self, n):
        return self.binop(n.op, self.eval(n.left), self.eval(n.right), n)

    def expr_UnaryOp(self, n):
        v = self.operand(self.eval(n.operand), n) if not isinstance(n.op, ast.Not) else self.eval(n.operand)
        if _is_const(v):
            return {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_,
                    ast.Invert: operator.invert}[type(n.op)](v)
        if isinstance(n.op, ast.USub):
            return V.neg(v)
        if isinstance(n.op, ast.UAdd):
            return v
        if isinstance(n.op, ast.Not):
            return V.logical_not(self.operand(v, n))
        return V.invert(v)

    def expr_BoolOp(self, n):
        vals = [self.eval(v) for v in n.values]
        is_and = isinstance(n.op, ast.And)
        if all(_is_const(v) for v in vals):
            out = vals[0]
            for v in vals[1:]:
                out = (out and v) if is_and else (out or v)
            return out
        consts = [v for v in vals if _is_const(v)]
        if is_and and any(not c for c in consts):
            return False
        if not is_and and any(c for c in consts):
            return True
        tvs = [V.cast(self.operand(v, n), dt.bool_) for v in vals if not _is_const(v)]
        out = tvs[0]
        for v in tvs[1:]:
            out = V.binary("and" if is_and else "or", out, v)
        return out

    def expr_Compare(self, n):
        left = self.eval(n.left)
        result = None
        for op, right_node in zip(n.ops, n.comparators):
            right = self.eval(right_node)
            name = _CMPOPS.get(type(op))
            if name is None:
                if isinstance(op, (ast.Is, ast.IsNot)) and _is_const(left) and _is_const(right):
                    r = (left is right) if isinstance(op, ast.Is) else (left is not right)
                elif isinstance(op, (ast.In, ast.NotIn)) and _is_const(left) and isinstance(right, (tuple, list)):
                    r = (left in right) if isinstance(op, ast.In) else (left not in right)
                else:
                    raise self.error(f"unsupported comparison {type(op).__name__}", n)
            else:
                if _is_const(left) and _is_const(right):
                    r = _PY_CMP[name](left, right)
                else:
                    r = V.binary(name, self.operand(left, n), self.operand(right, n))
            if result is None:
                result = r
            elif _is_const(result) and _is_const(r):
                result = result and r
            else:
                result = V.binary("and", V.to_tv(result), V.to_tv(r))
            left = right
        return result

    def expr_IfExp(self, n):
        c = self.eval(n.test)
        if _is_const(c):
            return self.eval(n.body if c else n.orelse)
        return V.where(c, self.operand(self.eval(n.body), n), self.operand(self.eval(n.orelse), n))

    def expr_Subscript(self, n):
        base = self.eval(n.value)
        idx = n.slice
        items = idx.elts if isinstance(idx, ast.Tuple) else [idx]
        if isinstance(base, (tuple, list)):
            i = self.eval(idx)
            if not isinstance(i, (int, slice)):
                raise self.error("tuples can only be indexed with constants", n)
            return base[i]
        if isinstance(base, V.ThreadArray):
            from .simt_builtins import array_load

            if isinstance(idx, (ast.Tuple, ast.Slice)):
                raise self.error(f"a {base.space} array takes one integer index", n)
            return array_load(self, base, self.eval(idx))
        base = self.operand(base, n)
        if not isinstance(base, V.TileValue) or not base.is_tile:
            raise self.error("only tiles can be indexed (with ':' and None)", n)
        out, axis = base, 0
        for it in items:
            if isinstance(it, ast.Slice) and it.lower is None and it.upper is None and it.step is None:
                axis += 1
            elif isinstance(it, ast.Constant) and it.value is None:
                out = V.expand_dims(out, axis)
                axis += 1
            else:
                raise self.error("tile indexing supports only ':' and None (e.g. x[:, None]); "
                                 "use al.load with pointer offsets to read elements", n)
        if axis - sum(1 for it in items if isinstance(it, ast.Constant)) > len(base.shape):
            raise self.error(f"too many indices for a tile of rank {len(base.shape)}", n)
        return out

    # -------------------------------------------------------------- calls
    def expr_Call(self, n):
        fn = self.eval(n.func)
        args = [self.eval(a) for a in n.args if not isinstance(a, ast.Starred)]
        if any(isinstance(a, ast.Starred) for a in n.args):
            raise self.error("*args in calls are not supported in kernels", n)
        kwargs = {}
        for k in n.keywords:
            if k.arg is None:
                raise self.error("**kwargs in calls are not supported in kernels", n)
            kwargs[k.arg] = self.eval(k.value)
        if isinstance(fn, tuple) and len(fn) == 3 and fn[0] == "method":
            return self.call_builtin("cast", [fn[2]] + args, kwargs, n)
        name = getattr(fn, "__alloy_builtin__", None)
        if name is not None:
            return self.call_builtin(name, args, kwargs, n)
        fsrc = getattr(fn, "__alloy_func__", None)
        if fsrc is not None:
            return self.inline_call(fsrc(), args, kwargs, n)
        if getattr(fn, "__alloy_kernel__", False):
            raise self.error("kernels cannot call other kernels; mark helpers with @al.func", n)
        if fn in _PY_FUNCS:
            return _PY_FUNCS[fn](self, args, kwargs, n)
        if isinstance(fn, dt.dtype):
            return self.call_builtin("cast", args + [fn], kwargs, n)
        fname = getattr(fn, "__name__", repr(fn))
        raise self.error(f"unsupported call to '{fname}' in a kernel (only al.* builtins, @al.func helpers "
                         "and range/min/max/abs/float/int/len are allowed)", n)

    def call_builtin(self, name, args, kwargs, node):
        from . import builtins as B

        impl = B.BUILTINS.get(name)
        if impl is None:
            raise self.error(f"al.{name} is not supported by this compiler yet", node)
        try:
            return impl(self, *args, **kwargs)
        except TypeError as e:
            if "positional argument" in str(e) or "keyword argument" in str(e):
                raise self.error(f"bad arguments to al.{name}: {e}", node) from None
            raise


def _py_minmax(kind):
    def impl(gen, args, kwargs, node):
        if kwargs or len(args) < 2:
            if len(args) == 1 and isinstance(args[0], (tuple, list)):
                args = list(args[0])
            else:
                raise gen.error(f"{kind}() in kernels takes two or more values", node)
        if all(_is_const(a) for a in args):
            return (max if kind == "max" else min)(args)
        out = gen.operand(args[0], node)
        for a in args[1:]:
            out = V.maximum(out, gen.operand(a, node), kind)
        return out
    return impl


def _py_cast(d):
    def impl(gen, args, kwargs, node):
        (x,) = args
        if _is_const(x):
            return {dt.float32: float, dt.int32: int, dt.bool_: bool}[d](x)
        return V.cast(gen.operand(x, node), d)
    return impl


def _py_abs(gen, args, kwargs, node):
    (x,) = args
    return abs(x) if _is_const(x) else V.unary_math("abs", gen.operand(x, node))


def _py_len(gen, args, kwargs, node):
    (x,) = args
    if isinstance(x, (tuple, list)):
        return len(x)
    if isinstance(x, V.TileValue) and x.is_tile:
        return x.shape[0]
    raise gen.error("len() needs a tuple or a tile", node)


def _py_unsupported(name):
    def impl(gen, args, kwargs, node):
        raise gen.error(f"'{name}' is not supported in kernels", node)
    return impl


_PY_FUNCS = {
    py_builtins.min: _py_minmax("min"), py_builtins.max: _py_minmax("max"),
    py_builtins.float: _py_cast(dt.float32), py_builtins.int: _py_cast(dt.int32),
    py_builtins.bool: _py_cast(dt.bool_), py_builtins.abs: _py_abs, py_builtins.len: _py_len,
    py_builtins.print: _py_unsupported("print"), py_builtins.range: _py_unsupported("range() outside a for loop"),
}

