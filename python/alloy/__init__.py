"""Alloy: compute kernels in Python, compiled through an MLIR tile dialect.

    import alloy as al

    @al.kernel
    def add(x, y, out: al.output, N, BLOCK: al.constexpr = 1024):
        offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
        al.store(out + offs, al.load(x + offs, mask=offs < N) + al.load(y + offs, mask=offs < N),
                 mask=offs < N)

    z = add[al.cdiv(n, 1024)](x, y, n)

Importing alloy loads neither MLIR nor torch: the compiler is imported on the
first cache miss.
"""
from .language.core import *  # noqa: F401,F403  (builtins: program_id, load, store, ...)
from .language.core import CompilationError, cdiv, constexpr, output
from .language.simt import *  # noqa: F401,F403  (thread-level builtins: thread_id, shared, simd_mma, ...)
from .language.dtypes import (bfloat16, bool_, dtype, float16, float32, float64, int8, int16, int32,  # noqa: F401
                              int64, uint8, uint16, uint32, uint64)
from .runtime.buffer import AlloyBuffer
from .runtime.prepared import LaunchSequence
from .runtime.profile import profile
from .runtime.kernel import Func, Kernel

from .version import __version__  # noqa: F401


def kernel(fn=None, *, writes_all_outputs: bool = False):
    """Decorate a Python function as an Alloy kernel; launch it with `fn[grid](...)`.

    `@al.kernel(writes_all_outputs=True)` declares that every launch stores every element of each
    `al.output`, which lets pointwise consumers fuse into its stores (docs/fusion.md)."""
    if fn is None:
        return lambda f: Kernel(f, writes_all_outputs)
    return Kernel(fn, writes_all_outputs)


def func(fn):
    """Decorate a helper that kernels call; it is inlined at each call site."""
    return Func(fn)


def empty(shape, dtype=float32) -> AlloyBuffer:
    """An uninitialised host buffer (pass it for an `al.output` to skip inference)."""
    return AlloyBuffer.empty(shape, dtype.np if isinstance(dtype, type(float32)) else dtype)


def prepare(kernel, grid, *args, **kwargs):
    """`kernel[grid](*args, **kwargs)` resolved once, for repeated cheap runs (see alloy.runtime.prepared);
    `al.LaunchSequence(launches)` runs several back to back."""
    from .runtime.prepared import prepare as _prepare

    return _prepare(kernel, grid, *args, **kwargs)


def inspect(kernel, *args, level="tile-ir", print_ir=True, **kwargs) -> str:
    """Print and return the IR of `kernel` at `level` for one specialisation, or of the (fused) kernel that
    will produce a pending AlloyBuffer (see alloy.inspection)."""
    from .inspection import inspect_kernel

    return inspect_kernel(kernel, args, kwargs, level, print_ir)


from .tuning import Config, autotune  # noqa: E402,F401  (after kernel: the builtins below are kernels)
from .std import (attention, attention_backward, avg_pool2d, avg_pool2d_backward, conv2d, conv_transpose2d, conv_transpose2d_backward, conv2d_backward, cross_entropy, dot_transpose_rhs,  # noqa: E402,F401
                  gated_linear, gelu, group_norm, layernorm, linear, matmul, max_pool2d, max_pool2d_backward,
                  rms_norm, rope, silu, softmax, transpose)


def cuda_available() -> bool:
    """Whether the CUDA target can launch in this process (a GPU, its driver, a CUDA-enabled runtime)."""
    from .runtime import cuda

    return cuda.available()


def synchronize() -> None:
    """Run every pending launch (their results still referenced), then wait for the configured device."""
    from . import config
    from .runtime import lazy
    from .runtime.launch import device_for

    lazy.synchronize()
    device_for(config.get().target).synchronize()
