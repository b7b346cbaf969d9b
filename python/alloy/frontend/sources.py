"""Source text, AST and globals of a kernel or @al.func, with line mapping.

Creating a FunctionSource is free: the source is read, parsed and jump-rewritten on first use of
any of its parsed fields (the compiler's, on a cache miss), so a cache hit never tokenizes."""
from __future__ import annotations

import ast
import inspect
import textwrap

_PARSED = frozenset({"filename", "first_line", "indent", "text", "_lines", "tree", "globals"})


class FunctionSource:
    def __init__(self, fn, is_kernel: bool):
        self.fn = fn
        self.name = fn.__name__
        self.is_kernel = is_kernel

    def __getattr__(self, attr):  # only reached while the parsed fields are unset
        if attr not in _PARSED:
            raise AttributeError(f"'FunctionSource' object has no attribute '{attr}'")
        self._parse()
        return self.__dict__[attr]

    def _parse(self) -> None:
        from . import jumps

        fn = self.fn
        filename = inspect.getsourcefile(fn) or "<unknown>"
        lines, first = inspect.getsourcelines(fn)
        text = textwrap.dedent("".join(lines))
        module = ast.parse(text)
        tree = module.body[0]
        if not isinstance(tree, ast.FunctionDef):
            raise TypeError(f"{self.name} is not a plain function definition")
        try:
            tree = jumps.rewrite_function(tree, self.is_kernel)
        except SyntaxError as e:
            from ..language.core import CompilationError

            raise CompilationError(str(e), kernel=self.name, filename=filename, lineno=first) from None
        scope = fn.__globals__
        closure = inspect.getclosurevars(fn).nonlocals
        if closure:
            scope = {**fn.__globals__, **closure}
        indent = len(lines[0]) - len(lines[0].lstrip())  # what dedent removed: AST columns start after it
        self.__dict__.update(filename=filename, first_line=first, indent=indent, text=text, _lines=text.splitlines(),
                             tree=tree, globals=scope)

    def lineno(self, node) -> int | None:
        n = getattr(node, "lineno", None)
        return None if n is None else n + self.first_line - 1

    def location(self, node):
        """The MLIR location (file:line:col, 1-based) of an AST node of this source."""
        from mlir import ir

        line = self.lineno(node)
        if line is None:
            return ir.Location.file(self.filename, self.first_line, 1)
        return ir.Location.file(self.filename, line, getattr(node, "col_offset", 0) + self.indent + 1)

    def line(self, lineno: int) -> str | None:
        i = lineno - self.first_line
        return self._lines[i] if 0 <= i < len(self._lines) else None
