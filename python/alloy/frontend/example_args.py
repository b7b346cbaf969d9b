"""Example arguments for `al.inspect` when the caller passes only constexprs (the spec's
`al.inspect(kernel, level="msl", N=8192)`).

An unannotated parameter is an array or a scalar depending on what a launch
passes; with nothing passed, its use in the kernel source decides:

- an array: its `.shape` is read (rank: the names of `M, K = A.shape`, or the
  largest `A.shape[i]` + 1), or it is the base of a pointer expression given
  to a memory builtin (`al.load(A + offs)`); a float32 array of that rank;
- a scalar: anything else; float32 when it meets a float (a float literal, a
  loaded value, a float builtin's result) in arithmetic, int32 otherwise.

Only the kernel's own body is read (not its @al.func helpers); when the guess
cannot compile, the caller says which argument to pass (see `undecided`).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

MEMORY_BUILTINS = frozenset({"load", "store", "atomic_add", "atomic_max", "atomic_min", "atomic_cas",
                             "atomic_xchg", "atomic_rmw", "coop_load", "copy4", "simd_load", "simd_store"})
FLOAT_BUILTINS = frozenset({"load", "exp", "log", "sqrt", "rsqrt", "sin", "cos", "tanh", "sigmoid", "erf",
                            "exp2", "log2", "zeros", "full", "tile_dot", "dot", "sum", "max", "min"})


@dataclass(frozen=True)
class ParameterGuess:
    """What a parameter with no example argument is taken to be."""

    name: str
    kind: str  # "array" | "float" | "int"
    rank: int = 1
    evidence: bool = True  # False: nothing in the source told (taken as an int scalar)


def _builtin_name(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f.attr
    return None


def _root_names(node) -> set[str]:
    """Names at the base of a pointer expression: `A + offs`, `A + r[:, None] * C` -> the summands' names."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return _root_names(node.left) | _root_names(node.right)
    return set()


class _Uses(ast.NodeVisitor):
    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.rank: dict[str, int] = {}
        self.pointers: set[str] = set()
        self.floats: set[str] = set()
        self.float_names: set[str] = set()  # locals bound to float values
        self.seen: set[str] = set()

    def visit_Name(self, node):
        if node.id in self.names:
            self.seen.add(node.id)

    def _shape_of(self, node) -> str | None:
        if isinstance(node, ast.Attribute) and node.attr == "shape" and isinstance(node.value, ast.Name) \
                and node.value.id in self.names:
            return node.value.id
        return None

    def visit_Assign(self, node):
        name = self._shape_of(node.value)
        if name is not None:
            for t in node.targets:
                if isinstance(t, (ast.Tuple, ast.List)):
                    self.rank[name] = max(self.rank.get(name, 1), len(t.elts))
        if self._is_float(node.value):
            for t in node.targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        self.float_names.add(n.id)
        self.generic_visit(node)

    def visit_Subscript(self, node):
        name = self._shape_of(node.value)
        if name is not None and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
            self.rank[name] = max(self.rank.get(name, 1), node.slice.value + 1)
        self.generic_visit(node)

    def visit_Attribute(self, node):
        name = self._shape_of(node)
        if name is not None:
            self.rank.setdefault(name, 1)
        self.generic_visit(node)

    def visit_Call(self, node):
        if _builtin_name(node) in MEMORY_BUILTINS and node.args:
            self.pointers |= _root_names(node.args[0]) & self.names
        self.generic_visit(node)

    def _is_float(self, node) -> bool:
        for n in ast.walk(node):
            if isinstance(n, ast.Constant) and isinstance(n.value, float):
                return True
            if isinstance(n, ast.Call) and _builtin_name(n) in FLOAT_BUILTINS:
                return True
            if isinstance(n, ast.Name) and n.id in self.float_names:
                return True
        return False

    def visit_BinOp(self, node):
        for side, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(side, ast.Name) and side.id in self.names and self._is_float(other):
                self.floats.add(side.id)
        self.generic_visit(node)


def guess(tree: ast.FunctionDef, names: list[str]) -> list[ParameterGuess]:
    """A guess for each of `names` (parameters of the kernel `tree` with no example argument)."""
    uses = _Uses(set(names))
    for _ in range(2):  # a second pass sees float locals bound after their first use
        uses.visit(tree)
    out = []
    for n in names:
        if n in uses.rank or n in uses.pointers:
            out.append(ParameterGuess(n, "array", uses.rank.get(n, 1)))
        elif n in uses.floats:
            out.append(ParameterGuess(n, "float"))
        else:
            out.append(ParameterGuess(n, "int", evidence=n in uses.seen))
    return out


def example(g: ParameterGuess):
    """The example value a guess stands for."""
    import numpy as np

    if g.kind == "array":
        return np.zeros((1,) * g.rank, np.float32)
    return 1.0 if g.kind == "float" else 1


def undecided(guesses: list[ParameterGuess]) -> str:
    """The sentence telling the caller which arguments to pass."""
    shown = ", ".join(f"{g.name} (taken as {'a float32 array of rank ' + str(g.rank) if g.kind == 'array' else g.kind})"
                      for g in guesses)
    return (f"al.inspect guessed the parameters it was not given: {shown}; pass example arguments for them, "
            f"e.g. al.inspect(kernel, {guesses[0].name}=np.zeros((64, 64), np.float16), ...)")
