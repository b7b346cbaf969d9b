"""AST rewrite of `break`, `continue` and early `return` into structured flags.

scf has no jumps, so before code generation:
  * a loop whose body breaks becomes a `while` over an explicit counter whose
    condition also tests a `__brk` flag;
  * `break`/`continue` set flags and the statements after them run under
    `if not (flags)` guards;
  * an early `return` in a kernel (outside loops) sets `__ret` and guards what
    follows.
"""
from __future__ import annotations

import ast
import itertools

_ids = itertools.count()


def _contains(nodes, kinds, into_loops=False) -> bool:
    for n in nodes:
        for sub in _walk_no_nested(n, into_loops):
            if isinstance(sub, kinds):
                return True
    return False


def _walk_no_nested(node, into_loops):
    """ast.walk that does not descend into nested loops (and never into defs)."""
    yield node
    if isinstance(node, (ast.For, ast.While)) and not into_loops:
        return  # a loop's jumps belong to it
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.FunctionDef, ast.Lambda, ast.ClassDef)):
            yield from _walk_no_nested(child, into_loops)


def _name(id_, ctx=ast.Load):
    return ast.Name(id=id_, ctx=ctx())


def _assign(name, value):
    return ast.Assign(targets=[_name(name, ast.Store)], value=value, lineno=0)


def _guard(stmts, flags, lineno):
    """`if not (f1 or f2): stmts`."""
    test = _name(flags[0]) if len(flags) == 1 else ast.BoolOp(op=ast.Or(), values=[_name(f) for f in flags])
    return ast.If(test=ast.UnaryOp(op=ast.Not(), operand=test), body=stmts, orelse=[], lineno=lineno)


class _Rewriter:
    def __init__(self, brk=None, cont=None, ret=None):
        self.brk, self.cont, self.ret = brk, cont, ret

    def flags(self):
        return [f for f in (self.brk, self.cont, self.ret) if f]

    def block(self, stmts):
        out = []
        jumps = (ast.Break, ast.Continue, ast.Return) if self.ret else (ast.Break, ast.Continue)
        for i, s in enumerate(stmts):
            jumps_here = _contains([s], jumps)
            out.extend(self.stmt(s))
            rest = stmts[i + 1:]
            if rest and jumps_here:
                guarded = self.block(rest)
                out.append(_guard(guarded, self.flags(), getattr(rest[0], "lineno", 0)))
                return out
        return out

    def stmt(self, s):
        if isinstance(s, ast.Break):
            return [ast.copy_location(_assign(self.brk, ast.Constant(True)), s)]
        if isinstance(s, ast.Continue):
            return [ast.copy_location(_assign(self.cont, ast.Constant(True)), s)]
        if isinstance(s, ast.Return) and self.ret:
            if s.value is not None:
                raise SyntaxError("a kernel cannot return a value")
            return [ast.copy_location(_assign(self.ret, ast.Constant(True)), s)]
        if isinstance(s, ast.If):
            s.body = self.block(s.body)
            s.orelse = self.block(s.orelse)
            return [s]
        if isinstance(s, (ast.For, ast.While)):
            return rewrite_loop(s, self.ret)
        return [s]


def rewrite_loop(loop, ret_flag=None):
    """Rewrite one loop (and the loops nested in it) if it jumps."""
    has_ret = ret_flag and _contains(loop.body, ast.Return)
    if has_ret:
        raise SyntaxError("'return' inside a loop is not supported in kernels; use 'break'")
    needs = _contains(loop.body, (ast.Break, ast.Continue))
    if not needs:
        loop.body = _Rewriter(ret=None).block(loop.body)
        return [loop]
    n = next(_ids)
    brk, cont = f"__brk{n}", f"__cont{n}"
    rw = _Rewriter(brk, cont)
    body = [_assign(cont, ast.Constant(False))] + rw.block(loop.body)
    pre = [_assign(brk, ast.Constant(False))]
    not_brk = ast.UnaryOp(op=ast.Not(), operand=_name(brk))
    if isinstance(loop, ast.While):
        test = ast.BoolOp(op=ast.And(), values=[not_brk, loop.test])
        new = ast.While(test=test, body=body, orelse=[])
    else:
        if not (isinstance(loop.iter, ast.Call) and isinstance(loop.iter.func, ast.Name)
                and loop.iter.func.id == "range" and isinstance(loop.target, ast.Name)):
            raise SyntaxError("break/continue are supported in 'for ... in range(...)' and 'while' loops")
        args = loop.iter.args
        start, stop, step = (ast.Constant(0), args[0], ast.Constant(1)) if len(args) == 1 else \
            (args[0], args[1], args[2] if len(args) > 2 else ast.Constant(1))
        ctr, end, stp = f"__i{n}", f"__end{n}", f"__step{n}"
        pre += [_assign(ctr, start), _assign(end, stop), _assign(stp, step)]
        cond = ast.Compare(left=_name(ctr), ops=[ast.Lt()], comparators=[_name(end)])
        if isinstance(step, ast.UnaryOp) and isinstance(step.op, ast.USub) or \
                isinstance(step, ast.Constant) and isinstance(step.value, int) and step.value < 0:
            cond = ast.Compare(left=_name(ctr), ops=[ast.Gt()], comparators=[_name(end)])
        test = ast.BoolOp(op=ast.And(), values=[not_brk, cond])
        head = [_assign(loop.target.id, _name(ctr)),
                _assign(ctr, ast.BinOp(left=_name(ctr), op=ast.Add(), right=_name(stp)))]
        new = ast.While(test=test, body=head + body, orelse=[])
    out = pre + [new]
    for node in out:
        ast.copy_location(node, loop)
        ast.fix_missing_locations(node)
    for node in ast.walk(new):
        if not hasattr(node, "lineno") or node.lineno == 0:
            node.lineno = loop.lineno
    return out


def rewrite_function(fn: ast.FunctionDef, is_kernel: bool) -> ast.FunctionDef:
    """Rewrite jumps in a kernel (early returns allowed) or an @al.func body."""
    ret = "__ret" if is_kernel and _contains(fn.body, ast.Return, into_loops=True) else None
    rw = _Rewriter(ret=ret)
    body = rw.block(fn.body)
    if ret:
        body = [ast.copy_location(_assign(ret, ast.Constant(False)), fn.body[0])] + body
    fn.body = body
    for node in ast.walk(fn):
        if isinstance(node, ast.stmt) and not getattr(node, "lineno", 0):
            node.lineno = fn.lineno
    ast.fix_missing_locations(fn)
    return fn
