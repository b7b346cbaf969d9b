"""The kernel language surface: parameter markers and builtin functions.

Each builtin is a Python function with the signature and documentation of
the kernel construct (`help(al.load)`); calling one outside a kernel raises.
The frontend recognises them by their `__alloy_builtin__` name and generates
IR (alloy/frontend/builtins.py, whose implementations take the same
parameters). Tiles are values of a static shape (power-of-two sizes on the
GPU targets); a pointer plus an integer tile is a tile of pointers.
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


def builtin(fn):
    """Mark `fn` as a kernel builtin: the frontend compiles calls to it; called from Python it raises."""
    name = fn.__name__

    @functools.wraps(fn)
    def outside_kernel(*args, **kwargs):
        raise RuntimeError(f"al.{name} can only be called inside an @al.kernel or @al.func")

    outside_kernel.__alloy_builtin__ = name
    return outside_kernel


# ------------------------------------------------------------------ indexing
@builtin
def program_id(axis=0):
    """The index of this program instance along grid axis `axis` (0, 1 or 2), an int32 scalar."""


@builtin
def num_programs(axis=0):
    """The grid's size along axis `axis` (0, 1 or 2), an int32 scalar."""


@builtin
def arange(start, end=None):
    """The int32 tile [start, start + 1, ..., end - 1] (`arange(n)` is [0, n)); start and end are constants."""


@builtin
def zeros(shape, dtype=None):
    """A tile of `shape` (a constant tuple) filled with zeros of `dtype` (default al.float32)."""


@builtin
def full(shape, value, dtype=None):
    """A tile of `shape` filled with `value` (a number or scalar); `dtype` defaults to the value's."""


# ------------------------------------------------------------------ memory
@builtin
def load(pointer, mask=None, other=None):
    """Read what `pointer` points at: a scalar pointer gives a scalar, a tile of pointers a tile.

    `mask` (a boolean tile, broadcast to the pointers' shape) turns lanes off; masked-off lanes read
    `other` (default 0) and touch no memory. The result has the pointee's dtype."""


@builtin
def store(pointer, value, mask=None):
    """Write `value` (cast to the pointee's dtype, broadcast to the pointers' shape) where `pointer` points,
    in the lanes `mask` leaves on. Stores to an `al.output` parameter define its inferred shape and dtype."""


@builtin
def atomic_add(pointer, *index_and_value, mask=None):
    """Atomically add: `atomic_add(ptr, value)` or `atomic_add(ptr, index, value)` (ptr + index).

    Works on int32, uint32, int64 and float32 memory, lane by lane under `mask`; returns the old values."""


@builtin
def atomic_max(pointer, *index_and_value, mask=None):
    """Atomic maximum, with the arguments and dtypes of `atomic_add`; returns the old values."""


@builtin
def atomic_min(pointer, *index_and_value, mask=None):
    """Atomic minimum, with the arguments and dtypes of `atomic_add`; returns the old values."""


@builtin
def atomic_xchg(pointer, *index_and_value, mask=None):
    """Atomic exchange, with the arguments and dtypes of `atomic_add`; returns the old values."""


@builtin
def atomic_cas(pointer, *index_expected_desired):
    """Compare-and-swap one element: `atomic_cas(ptr, expected, desired)` or `(ptr, index, expected,
    desired)`; writes `desired` where memory holds `expected` and returns the old value."""


# ------------------------------------------------------------------ shapes
@builtin
def expand_dims(x, axis):
    """`x` with a new axis of size 1 at position `axis` (moves no data)."""


@builtin
def broadcast_to(x, shape):
    """`x` broadcast to `shape` (numpy's rules; a scalar becomes a filled tile)."""


@builtin
def reshape(x, shape):
    """`x` in a new shape with the same number of elements, in row-major order."""


@builtin
def trans(x):
    """The transpose of a 2-D tile."""


# ------------------------------------------------------------------ reductions
@builtin
def sum(x, axis=None, keepdims=False):
    """Sum over `axis` (all axes when None); 8/16-bit ints and bools sum in int32, f16/bf16 in float32."""


@builtin
def max(x, *others, axis=None, keepdims=False):
    """Maximum over `axis` (all axes when None); `max(a, b, ...)` is the elementwise `maximum`."""


@builtin
def min(x, *others, axis=None, keepdims=False):
    """Minimum over `axis` (all axes when None); `min(a, b, ...)` is the elementwise `minimum`."""


@builtin
def argmax(x, axis=None, keepdims=False):
    """int32 index of the maximum along `axis` (the first on ties); without `axis` `x` must be 1-D."""


@builtin
def argmin(x, axis=None, keepdims=False):
    """int32 index of the minimum along `axis` (the first on ties); without `axis` `x` must be 1-D."""


# ------------------------------------------------------------------ math
@builtin
def exp(x):
    """e ** x, elementwise (floats; f16/bf16 computed in float32 and rounded once)."""


@builtin
def exp2(x):
    """2 ** x, elementwise (floats)."""


@builtin
def log(x):
    """Natural logarithm, elementwise."""


@builtin
def log2(x):
    """Base-2 logarithm, elementwise."""


@builtin
def sqrt(x):
    """Square root, elementwise (floats)."""


@builtin
def rsqrt(x):
    """1 / sqrt(x), elementwise."""


@builtin
def sin(x):
    """Sine (radians), elementwise."""


@builtin
def cos(x):
    """Cosine (radians), elementwise."""


@builtin
def tanh(x):
    """Hyperbolic tangent, elementwise."""


@builtin
def erf(x):
    """The error function, elementwise."""


@builtin
def sigmoid(x):
    """1 / (1 + exp(-x)), elementwise."""


@builtin
def abs(x):
    """Absolute value, elementwise (ints and floats)."""


@builtin
def floor(x):
    """Round down to an integral value, elementwise (floats)."""


@builtin
def ceil(x):
    """Round up to an integral value, elementwise (floats)."""


@builtin
def maximum(a, b):
    """Elementwise maximum of two tiles or scalars (broadcast; promoted like `a + b`)."""


@builtin
def minimum(a, b):
    """Elementwise minimum of two tiles or scalars (broadcast; promoted like `a + b`)."""


@builtin
def where(condition, a, b):
    """`a` where `condition` is true, else `b`, elementwise (broadcast)."""


@builtin
def fma(a, b, c):
    """a * b + c with one rounding, elementwise."""


@builtin
def cast(x, dtype):
    """`x` converted to `dtype` (an al dtype); `x.to(dtype)` is the same."""


# ------------------------------------------------------------------ matrix
@builtin
def tile_dot(a, b, acc=None, transpose_rhs=False, transpose_lhs=False):
    """The float32 matrix product a @ b (+ acc) of 2-D tiles [M, K] and [K, N]; `transpose_rhs` /
    `transpose_lhs` multiply by the transposed operand. Integer operands multiply as float32."""


@builtin
def dot(a, b, acc=None, transpose_rhs=False, transpose_lhs=False):
    """Another name for `tile_dot`."""


# ------------------------------------------------------------------ compile-time helpers
@builtin
def static_range(*args):
    """`range` unrolled at compile time: `for i in al.static_range(4):` (constant bounds)."""


def cdiv(a, b):
    """Ceiling division; usable on the host (grids) and inside kernels."""
    return -(-a // b)


cdiv.__alloy_builtin__ = "cdiv"

BUILTIN_NAMES = tuple(n for n, v in list(globals().items()) if hasattr(v, "__alloy_builtin__"))

__all__ = ["constexpr", "output", "CompilationError", "builtin", *BUILTIN_NAMES]
