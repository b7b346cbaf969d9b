"""Source text, AST and globals of a kernel or @al.func, with line mapping."""
from __future__ import annotations

import ast
import inspect
import textwrap

from . import jumps


class FunctionSource:
    def __init__(self, fn, is_kernel: bool):
        self.fn = fn
        self.name = fn.__name__
        self.filename = inspect.getsourcefile(fn) or "<unknown>"
        lines, first = inspect.getsourcelines(fn)
        self.first_line = first
        self.text = textwrap.dedent("".join(lines))
        self._lines = self.text.splitlines()
        module = ast.parse(self.text)
        tree = module.body[0]
        if not isinstance(tree, ast.FunctionDef):
            raise TypeError(f"{self.name} is not a plain function definition")
        try:
            self.tree = jumps.rewrite_function(tree, is_kernel)
        except SyntaxError as e:
            from ..language.core import CompilationError

            raise CompilationError(str(e), kernel=self.name, filename=self.filename, lineno=first) from None
        self.globals = fn.__globals__
        closure = inspect.getclosurevars(fn).nonlocals
        if closure:
            self.globals = {**fn.__globals__, **closure}

    def lineno(self, node) -> int | None:
        n = getattr(node, "lineno", None)
        return None if n is None else n + self.first_line - 1

    def line(self, lineno: int) -> str | None:
        i = lineno - self.first_line
        return self._lines[i] if 0 <= i < len(self._lines) else None
