"""The kernel language surface: parameter markers and builtin functions.

Builtins are placeholders in Python: calling one outside a kernel raises. The
frontend recognises them by their `__alloy_builtin__` name and generates IR.
"""
from __future__ import annotations

import functools


class constexpr:
    """Annotation for compile-time parameters: `BLOCK: al.constexpr = 128`.

    The kernel is specialised on their values; `if` on a constexpr is folded.
    """


class output:
    """Annotation for output parameters: allocated by the runtime, returned.

    The shape and dtype are inferred from the kernel's stores; pass an array
    for the parameter by keyword to provide the destination yourself.
    """


class CompilationError(Exception):
    """A kernel could not be compiled; names the kernel, file, line and construct."""

    def __init__(self, message: str, *, kernel: str | None = None, filename: str | None = None,
                 lineno: int | None = None, source_line: str | None = None):
        self.kernel, self.filename, self.lineno, self.source_line = kernel, filename, lineno, source_line
        where = ""
        if filename is not None:
            where = f"{filename}:{lineno}: " if lineno is not None else f"{filename}: "
        head = f"{where}in kernel '{kernel}': " if kernel else where
        text = head + message
        if source_line:
            text += f"\n    {source_line.strip()}"
        super().__init__(text)
        self.message = message


def _builtin(name: str):
    def deco(fn):
        @functools.wraps(fn)
        def placeholder(*args, **kwargs):
            raise RuntimeError(f"al.{name} can only be called inside an @al.kernel or @al.func")

        placeholder.__alloy_builtin__ = name
        return placeholder

    return deco


def _define(names):
    out = {}
    for n in names:
        out[n] = _builtin(n)(lambda *a, **k: None)
        out[n].__name__ = n
        out[n].__qualname__ = n
    return out


BUILTIN_NAMES = (
    # indexing
    "program_id", "num_programs", "arange", "zeros", "full",
    # memory
    "load", "store", "atomic_add", "atomic_max", "atomic_min", "atomic_xchg", "atomic_cas",
    # shape
    "expand_dims", "broadcast_to", "reshape", "trans",
    # reductions
    "sum", "max", "min", "argmax", "argmin",
    # math
    "exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "erf", "sigmoid",
    "abs", "floor", "ceil", "maximum", "minimum", "where", "fma", "cast",
    # matrix
    "tile_dot", "dot",
    # compile-time helpers
    "cdiv", "static_range",
)
globals().update(_define(BUILTIN_NAMES))


def cdiv(a, b):
    """Ceiling division; usable on the host (grids) and inside kernels."""
    return -(-a // b)


cdiv.__alloy_builtin__ = "cdiv"
