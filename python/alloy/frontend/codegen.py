"""Python AST → tile dialect: statements, names and control flow.

Expressions and builtin calls live in `expressions.py` / `builtins.py`; this
file owns the function being generated, the scope, and structured control
flow (scf.if / scf.for / scf.while with loop-carried values).
"""
from __future__ import annotations

import ast
import builtins as py_builtins

from mlir import ir
from mlir.dialects import func, scf

from ..language import core
from ..language import dtypes as dt
from . import values as V
from .values import ArrayArg, SimdMatrix, StoreRecord, ThreadArray
from .expressions import ExpressionMixin
from .signature import ArgSpec, Slot, Spec
from .sources import FunctionSource


DEFAULT_THREADS = 256  # threadgroup size of a SIMT kernel launched without threads=
SIMD = "simd"  # the pointer slot of a carried type that is a SIMD-group matrix: (dtype, (8, 8), SIMD)


class _Return(Exception):
    pass


class CodeGenerator(ExpressionMixin):
    def __init__(self, src: FunctionSource, spec: Spec, output_dtypes: dict[str, dt.dtype]):
        self.src, self.spec = src, spec
        self.output_dtypes = dict(output_dtypes)
        self.kernel_name = src.name
        self.scope: dict[str, object] = {}
        self.slots: list[Slot] = []
        self.stores: list[StoreRecord] = []
        self.stored_dtypes: dict[str, dt.dtype] = {}
        self.node = None
        self._src_stack = [src]
        self.simt = False  # set by the thread-level builtins (simt_builtins.py)
        self.threads = spec.threads or DEFAULT_THREADS
        self.shared_bytes = 0
        self.written: set[str] = set()  # parameters the kernel stores to ("?": one it cannot name)

    # ------------------------------------------------------------ errors
    def error(self, msg, node=None) -> core.CompilationError:
        node = node or self.node
        src = self._src_stack[-1]
        lineno = src.lineno(node) if node is not None else None
        return core.CompilationError(msg, kernel=self.kernel_name, filename=src.filename, lineno=lineno,
                                     source_line=src.line(lineno) if lineno else None)

    # ------------------------------------------------------------ entry
    def generate(self) -> ir.Module:
        module = ir.Module.create()
        arg_types, binders = [], []
        for a in self.spec.args:
            if a.kind in ("array", "output"):
                d = self.output_dtypes.get(a.name, a.dtype) if a.kind == "output" else a.dtype
                arg_types.append(V.ir_type(d, None, True))
                self.slots.append(Slot("ptr", a.name, dtype=d))
                binders.append(("ptr", a, d))
                if a.kind == "array":
                    for i in range(a.rank):
                        arg_types.append(V.ir_type(dt.int32))
                        self.slots.append(Slot("dim", a.name, i))
                        binders.append(("dim", a, i))
            else:
                arg_types.append(V.ir_type(a.dtype))
                self.slots.append(Slot("scalar", a.name, dtype=a.dtype))
                binders.append(("scalar", a, a.dtype))
        with ir.InsertionPoint(module.body):
            fn = func.FuncOp(self.kernel_name, ir.FunctionType.get(arg_types, []))
            fn.attributes["tile.kernel"] = ir.UnitAttr.get()
            block = fn.add_entry_block()
        with ir.InsertionPoint(block):
            args = list(block.arguments)
            pending: dict[str, list] = {}
            for i, (kind, a, extra) in enumerate(binders):
                if kind == "ptr":
                    pending[a.name] = [V.TileValue(args[i], extra, None, True, ("ptr", a.name, ("const", 0))), []]
                elif kind == "dim":
                    pending[a.name][1].append(V.TileValue(args[i], dt.int32, sym=("arg", i)))
                else:
                    self.scope[a.name] = V.TileValue(args[i], extra, sym=("arg", i) if extra.is_int else None)
            for a in self.spec.args:
                if a.kind in ("array", "output"):
                    ptr, dims = pending[a.name]
                    self.scope[a.name] = ArrayArg(a.name, ptr, tuple(dims) if a.kind == "array" else None)
            for k, v in self.spec.constexprs:
                self.scope[k] = v
            body = self.src.tree.body
            self.visit_block(body)
            func.ReturnOp([])
        if self.simt or self.spec.threads:
            fn.attributes["tile.threads"] = ir.IntegerAttr.get(ir.IntegerType.get_signless(64), self.threads)
        return module

    # ------------------------------------------------------------ names
    def lookup(self, name, node):
        if name in self.scope:
            return self.scope[name]
        g = self._src_stack[-1].globals
        if name in g:
            return g[name]
        if hasattr(py_builtins, name):
            return getattr(py_builtins, name)
        raise self.error(f"name '{name}' is not defined", node)

    # ------------------------------------------------------------ statements
    def visit_block(self, stmts):
        for s in stmts:
            self.visit_stmt(s)

    def visit_stmt(self, s):
        self.node = s
        m = getattr(self, "stmt_" + type(s).__name__, None)
        if m is None:
            raise self.error(f"unsupported statement '{type(s).__name__}' in kernels", s)
        try:
            with self._src_stack[-1].location(s):
                m(s)
        except (core.CompilationError, _Return):
            raise
        except V.SemanticError as e:
            raise self.error(str(e), s) from None

    def stmt_Pass(self, s):
        pass

    def stmt_Expr(self, s):
        if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
            return  # docstring
        self.eval(s.value)

    def stmt_Assign(self, s):
        value = self.eval(s.value)
        for t in s.targets:
            self.assign(t, value)

    def stmt_AnnAssign(self, s):
        if s.value is None:
            return
        self.assign(s.target, self.eval(s.value))

    def stmt_AugAssign(self, s):
        if isinstance(s.target, ast.Subscript):
            cur = self.eval(s.target)
            self.assign(s.target, self.binop(s.op, cur, self.eval(s.value), s))
            return
        if not isinstance(s.target, ast.Name):
            raise self.error("augmented assignment needs a plain variable name", s)
        cur = self.lookup(s.target.id, s)
        self.assign(s.target, self.binop(s.op, cur, self.eval(s.value), s))

    def assign(self, target, value):
        if isinstance(target, ast.Name):
            held = self.scope.get(target.id)
            if isinstance(held, ArrayArg) and held.name == target.id and value is not held:
                raise self.error(f"cannot rebind array parameter '{target.id}'; bind the new value to "
                                 f"another name", target)
            self.scope[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)):
            if not isinstance(value, (tuple, list)):
                raise self.error("cannot unpack a non-tuple value", target)
            if len(value) != len(target.elts):
                raise self.error(f"cannot unpack {len(value)} values into {len(target.elts)} names", target)
            for t, v in zip(target.elts, value):
                self.assign(t, v)
        elif isinstance(target, ast.Subscript):
            from .simt_builtins import array_store

            arr = self.eval(target.value)
            if not isinstance(arr, ThreadArray):
                raise self.error("only al.shared / al.local arrays take element assignment (buf[i] = v); "
                                 "write global memory with al.store", target)
            if isinstance(target.slice, (ast.Tuple, ast.Slice)):
                raise self.error(f"a {arr.space} array takes one integer index", target)
            with self._src_stack[-1].location(target):
                try:
                    array_store(self, arr, self.eval(target.slice), value)
                except V.SemanticError as e:
                    raise self.error(str(e), target) from None
        else:
            raise self.error(f"unsupported assignment target '{type(target).__name__}'", target)

    def _check_arrays_kept(self, before, assigned, s) -> None:
        """An array is chosen at compile time: a name holding one may not be rebound under runtime control flow."""
        for n in assigned:
            if isinstance(before.get(n), ArrayArg):
                raise self.error(f"'{n}' names array '{before[n].name}' and is assigned under a runtime "
                                 f"'{type(s).__name__.lower()}'; choose arrays with constexpr conditions, or "
                                 f"select pointers (al.where) instead", s)

    def stmt_Return(self, s):
        raise self.error("'return' is only allowed at the end of an @al.func", s)

    def stmt_Assert(self, s):
        test = self.eval(s.test)
        if isinstance(test, V.TileValue):
            raise self.error("assert needs a compile-time condition (constexpr)", s)
        if not test:
            msg = self.eval(s.msg) if s.msg is not None else "assertion failed"
            raise self.error(f"static assertion failed: {msg}", s)

    def stmt_Break(self, s):
        raise self.error("'break' outside a loop", s)

    stmt_Continue = stmt_Break

    # ------------------------------------------------------------ control flow
    @staticmethod
    def assigned_names(stmts) -> list[str]:
        seen = []
        for s in stmts:
            for n in ast.walk(s):
                targets = []
                if isinstance(n, ast.Assign):
                    targets = n.targets
                elif isinstance(n, (ast.AugAssign, ast.AnnAssign)):
                    targets = [n.target]
                elif isinstance(n, ast.For):
                    targets = [n.target]
                for t in targets:
                    for x in _bound_names(t):
                        if x not in seen:
                            seen.append(x)
        return seen

    def _carried_type(self, v, name, node):
        if isinstance(v, SimdMatrix):
            return (v.dtype, (8, 8), SIMD)
        if isinstance(v, V.TileValue):
            return (v.dtype, v.shape, v.is_ptr)
        if isinstance(v, (bool, int, float)):
            return (V.py_dtype(v), None, False)
        raise self.error(f"variable '{name}' of type {type(v).__name__} cannot change inside control flow", node)

    def _unify_types(self, ts, name, node):
        ts = [t for t in ts if t is not None]
        d, shape, is_ptr = ts[0]
        for d2, s2, p2 in ts[1:]:
            if p2 != is_ptr:
                raise self.error(f"variable '{name}' is a pointer on one path and not on another", node)
            d = d if is_ptr and d == d2 else dt.promote(d, d2) if not is_ptr else None
            if d is None:
                raise self.error(f"variable '{name}' points to different element types on different paths", node)
            try:
                shape = V.broadcast_shapes(shape, s2)
            except V.SemanticError as e:
                raise self.error(f"variable '{name}': {e}", node) from None
        return (d, shape, is_ptr)

    def _materialize(self, v, t):
        d, shape, is_ptr = t
        if is_ptr == SIMD:
            return v
        if not isinstance(v, V.TileValue):
            v = V.const(v, d)
        if not is_ptr:
            v = V.cast(v, d)
        return V.broadcast_to(v, shape)

    @staticmethod
    def _ptr_sym(vals):
        syms = {v.sym[1] if isinstance(v, V.TileValue) and v.sym and v.sym[0] == "ptr" else None for v in vals}
        return ("ptr", syms.pop(), None) if len(syms) == 1 and None not in syms else None

    def _bind_results(self, names, types, results, inits_by_name):
        for n, t, r in zip(names, types, results):
            if t[2] == SIMD:
                self.scope[n] = SimdMatrix(r, t[0])
                continue
            sym = self._ptr_sym(inits_by_name.get(n, [])) if t[2] else None
            self.scope[n] = V.TileValue(r, t[0], t[1], t[2], sym)

    def _bind_carried(self, before, names, tys, args, inits):
        """Scope for a loop region: `before`, with the carried names bound to the region's arguments."""
        self.scope = dict(before)
        for n, t, a in zip(names, tys, args):
            if t[2] == SIMD:
                self.scope[n] = SimdMatrix(a, t[0])
                continue
            self.scope[n] = V.TileValue(a, t[0], t[1], t[2], self._ptr_sym(inits[n]) if t[2] else None)

    def _yield_if_settled(self, names, tys, inits, node):
        """Yield the carried values if their types are `tys`; return the types they have."""
        vals = [self.scope[n] for n in names]
        got = [self._carried_type(v, n, node) for n, v in zip(names, vals)]
        if got == tys:
            scf.YieldOp([self._materialize(v, t).value for v, t in zip(vals, tys)])
            for n, v in zip(names, vals):
                inits[n].append(v)
        return got

    def _retry(self, attempt, types, names, node):
        """Run `attempt(types)` until the types it yields are the types it was given."""
        mark = len(self.stores)
        for _ in range(4):
            got = attempt(types)
            if got == types:
                return
            del self.stores[mark:]
            types = [self._unify_types([t, g], n, node) for t, g, n in zip(types, got, names)]
        raise self.error("could not settle the types of loop-carried variables", node)

    def stmt_If(self, s):
        cond = self.eval(s.test)
        if not isinstance(cond, V.TileValue):
            self.visit_block(s.body if cond else s.orelse)
            return
        if cond.is_tile:
            raise self.error("an 'if' condition must be a scalar; use al.where() for tiles", s)
        cond = V.cast(cond, dt.bool_)
        before = dict(self.scope)
        assigned = self.assigned_names(s.body + s.orelse)
        then_names = set(self.assigned_names(s.body))
        else_names = set(self.assigned_names(s.orelse))
        self._check_arrays_kept(before, assigned, s)
        names = [n for n in assigned if n in before or (n in then_names and n in else_names)]

        def branch_types(block, scope_after):
            return [self._carried_type(scope_after[n], n, s) if n in scope_after else None for n in names]

        # first pass: find the types each branch produces
        types = [self._carried_type(before[n], n, s) if n in before else None for n in names]
        probe = scf.IfOp(cond.value, [], has_else=True)
        outs = []
        for blk, stmts in ((probe.then_block, s.body), (probe.else_block, s.orelse)):
            self.scope = dict(before)
            with ir.InsertionPoint(blk):
                mark = len(self.stores)
                self.visit_block(stmts)
                del self.stores[mark:]
                scf.YieldOp([])
            missing = [n for n in names if n not in self.scope]
            if missing:
                raise self.error(f"variable '{missing[0]}' is assigned on only one path of this 'if'", s)
            outs.append(branch_types(blk, self.scope))
        probe.operation.erase()
        types = [self._unify_types([t, a, b], n, s) for t, a, b, n in zip(types, outs[0], outs[1], names)]

        inits = {}

        def attempt(tys):
            op = scf.IfOp(cond.value, [V.ir_type(*t) for t in tys], has_else=True)
            got = []
            for blk, stmts in ((op.then_block, s.body), (op.else_block, s.orelse)):
                self.scope = dict(before)
                with ir.InsertionPoint(blk):
                    self.visit_block(stmts)
                    vals = [self.scope[n] for n in names]
                    for n, v in zip(names, vals):
                        inits.setdefault(n, []).append(v)
                    got.append([self._carried_type(v, n, s) for n, v in zip(names, vals)])
                    scf.YieldOp([self._materialize(v, t).value for v, t in zip(vals, tys)])
            self._last = op
            return tys

        self._retry(attempt, types, names, s)
        self.scope = before
        self._bind_results(names, types, self._last.results, inits)

    def _range_args(self, call, node):
        args = [self.eval(a) for a in call.args]
        if call.keywords or not 1 <= len(args) <= 3:
            raise self.error("range() takes 1 to 3 positional arguments", node)
        if len(args) == 1:
            args = [0, args[0], 1]
        elif len(args) == 2:
            args.append(1)
        return args

    def stmt_For(self, s):
        if s.orelse:
            raise self.error("'for ... else' is not supported", s)
        it = s.iter
        if isinstance(it, ast.Call):
            fn = self.eval(it.func)
            if getattr(fn, "__alloy_builtin__", None) == "static_range":
                return self._unrolled_for(s, self._range_args(it, s))
            if fn is py_builtins.range:
                return self._scf_for(s, self._range_args(it, s))
        seq = self.eval(it)
        if isinstance(seq, (tuple, list)):
            for v in seq:
                self.assign(s.target, v)
                self.visit_block(s.body)
            return
        raise self.error("for loops must iterate over range(...), al.static_range(...) or a tuple", s)

    def _unrolled_for(self, s, args):
        if any(isinstance(a, V.TileValue) for a in args):
            raise self.error("al.static_range bounds must be compile-time constants", s)
        for i in range(*args):
            self.assign(s.target, i)
            self.visit_block(s.body)

    def _scf_for(self, s, args):
        if not isinstance(s.target, ast.Name):
            raise self.error("the loop variable must be a plain name", s)
        start, stop, step = args
        for a in args:
            if isinstance(a, V.TileValue) and (a.is_tile or not a.dtype.is_int) or \
                    not isinstance(a, V.TileValue) and not isinstance(a, int):
                raise self.error("range() bounds must be integer scalars", s)
        if not isinstance(step, V.TileValue) and step == 0:
            raise self.error("range() step must not be zero", s)
        ity = dt.int32
        for a in args:
            ity = dt.promote(ity, a.dtype if isinstance(a, V.TileValue) else V.py_dtype(a))
        if not isinstance(step, V.TileValue) and step < 0:  # count down: iterate over a trip count
            n = V.binary("floordiv", V.binary("sub", V.binary("sub", start, stop), step + 1), -step)
            n = V.maximum(n, 0)
            lb, ub, st = V.const(0, ity), V.cast(n, ity), V.const(1, ity)
            def ivmap(iv):
                return V.binary("add", start, V.binary("mul", iv, step))
        else:
            lb, ub, st = (V.cast(a, ity) if isinstance(a, V.TileValue) else V.const(a, ity) for a in args)
            ivmap = None
        before = dict(self.scope)
        body_names = self.assigned_names(s.body)
        self._check_arrays_kept(before, body_names, s)
        names = [n for n in body_names if n in before and n != s.target.id]
        types = [self._carried_type(before[n], n, s) for n in names]
        inits = {n: [before[n]] for n in names}

        def attempt(tys):
            init_vals = [self._materialize(before[n], t).value for n, t in zip(names, tys)]
            loop = scf.ForOp(lb.value, ub.value, st.value, init_vals)
            self._bind_carried(before, names, tys, loop.inner_iter_args, inits)
            with ir.InsertionPoint(loop.body):
                iv = V.TileValue(loop.induction_variable, ity)
                self.scope[s.target.id] = ivmap(iv) if ivmap else iv
                self.visit_block(s.body)
                got = self._yield_if_settled(names, tys, inits, s)
            if got != tys:
                loop.operation.erase()
            self._last = loop
            return got

        self._retry(attempt, types, names, s)
        self.scope = before
        self._bind_results(names, types, self._last.results, inits)

    def stmt_While(self, s):
        if s.orelse:
            raise self.error("'while ... else' is not supported", s)
        before = dict(self.scope)
        self._check_arrays_kept(before, self.assigned_names(s.body), s)
        names = [n for n in self.assigned_names(s.body) if n in before]
        types = [self._carried_type(before[n], n, s) for n in names]
        inits = {n: [before[n]] for n in names}

        def attempt(tys):
            init_vals = [self._materialize(before[n], t).value for n, t in zip(names, tys)]
            rtypes = [V.ir_type(*t) for t in tys]
            op = scf.WhileOp(rtypes, init_vals)
            bblk = op.before.blocks.append(*rtypes)
            ablk = op.after.blocks.append(*rtypes)
            self._bind_carried(before, names, tys, bblk.arguments, inits)
            with ir.InsertionPoint(bblk):
                c = self.eval(s.test)
                if not isinstance(c, V.TileValue):
                    c = V.const(bool(c), dt.bool_)
                if c.is_tile:
                    raise self.error("a 'while' condition must be a scalar", s)
                scf.ConditionOp(V.cast(c, dt.bool_).value, list(bblk.arguments))
            self._bind_carried(before, names, tys, ablk.arguments, inits)
            with ir.InsertionPoint(ablk):
                self.visit_block(s.body)
                got = self._yield_if_settled(names, tys, inits, s)
            if got != tys:
                op.operation.erase()
            self._last = op
            return got

        self._retry(attempt, types, names, s)
        self.scope = before
        self._bind_results(names, types, self._last.results, inits)

    # ------------------------------------------------------------ @al.func inlining
    def inline_call(self, fsrc: FunctionSource, args, kwargs, node):
        import inspect as _inspect

        sig = _inspect.signature(fsrc.fn)
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as e:
            raise self.error(f"bad call to @al.func '{fsrc.name}': {e}", node) from None
        bound.apply_defaults()
        saved_scope, saved_node = self.scope, self.node
        self.scope = dict(bound.arguments)
        self._src_stack.append(fsrc)
        try:
            body = fsrc.tree.body
            result = None
            for i, st in enumerate(body):
                if isinstance(st, ast.Return):
                    if i != len(body) - 1:
                        raise self.error("'return' must be the last statement of an @al.func", st)
                    self.node = st
                    result = self.eval(st.value) if st.value is not None else None
                else:
                    self.visit_stmt(st)
            return result
        finally:
            self._src_stack.pop()
            self.scope, self.node = saved_scope, saved_node


def generate(src: FunctionSource, spec: Spec) -> tuple[ir.Module, CodeGenerator]:
    """Generate the tile-IR module for one specialisation (needs an active context)."""
    outputs = {a.name: dt.float32 for a in spec.args if a.kind == "output"}
    for a in spec.args:
        if a.kind == "output" and a.dtype is not None:
            outputs[a.name] = a.dtype
    fixed = {a.name for a in spec.args if a.kind == "output" and a.dtype is not None}
    for _ in range(3):
        gen = CodeGenerator(src, spec, outputs)
        with src.location(src.tree):  # ops outside any statement (arguments, the return) sit at the def line
            module = gen.generate()
        changed = {n: d for n, d in gen.stored_dtypes.items() if n not in fixed and outputs.get(n) != d}
        if not changed:
            return module, gen
        outputs.update(changed)
    return module, gen


__all__ = ["ArrayArg", "CodeGenerator", "StoreRecord", "generate", "ArgSpec"]


def _bound_names(target) -> list[str]:
    """Names an assignment target rebinds (`buf[i] = v` rebinds none: it writes an array)."""
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for t in target.elts for n in _bound_names(t)]
    if isinstance(target, ast.Starred):
        return _bound_names(target.value)
    return []
