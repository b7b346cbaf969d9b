"""The kernel of `al.transpose` and of permuted views passed to builtins: each output element read from where
it lies in the input (its offset absorbed as strides), so a consumer that fuses it as a prologue reads the
input in place, permuted, with no transposed copy (docs/fusion.md)."""
from __future__ import annotations

import math

import alloy as al

BLOCK = 1024
MAX_DIMS = 4


@al.kernel(writes_all_outputs=True)
def permute_kernel(X, Y: al.output, n, d1, d2, d3, s0, s1, s2, s3, NDIM: al.constexpr, BLOCK: al.constexpr):
    """Y (flat; the permuted shape (d0, d1, d2, d3), its last NDIM axes used) from X, in which Y's element
    (i0, i1, i2, i3) lies at i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    mask = offs < n
    src = (offs % d3) * s3
    rest = offs // d3
    if NDIM >= 2:
        src += (rest % d2) * s2
        rest = rest // d2
    if NDIM >= 3:
        src += (rest % d1) * s1
        rest = rest // d1
    if NDIM >= 4:
        src += rest * s0
    al.store(Y + offs, al.load(X + src, mask=mask), mask=mask)


def launch_permute(call, x, order: tuple[int, ...], y):
    """Launch permute_kernel for `call` (a std.arrays.Call): y (numpy.transpose(x, order)'s shape) from the
    contiguous x. Returns (grid, args, kwargs) of the launch (none when x is empty)."""
    shape = tuple(int(s) for s in x.shape)
    ndim, n = len(shape), math.prod(shape)
    if n == 0:
        return None
    strides = [math.prod(shape[i + 1:]) for i in range(ndim)]
    pad = MAX_DIMS - ndim
    dims = (1,) * pad + tuple(shape[a] for a in order)
    src = (0,) * pad + tuple(strides[a] for a in order)
    grid = al.cdiv(n, BLOCK)
    args = (x.reshape(n), n, dims[1], dims[2], dims[3], *src)
    kwargs = dict(Y=y, NDIM=max(ndim, 1), BLOCK=BLOCK)
    call.launch(permute_kernel, grid, *args, **kwargs)
    return grid, args, kwargs


def permutation_of(a) -> tuple | None:
    """(C-contiguous base, axes) with `a` == numpy.transpose(base, axes), for a numpy view whose strides
    are a permutation of a contiguous array's (at most MAX_DIMS axes); else None."""
    import numpy as np

    if not isinstance(a, np.ndarray) or a.flags.c_contiguous or not 2 <= a.ndim <= MAX_DIMS or \
            min(a.strides) <= 0 or 0 in a.shape:
        return None
    order = tuple(int(i) for i in np.argsort([-s for s in a.strides], kind="stable"))
    base = a.transpose(order)
    if not base.flags.c_contiguous:
        return None
    return base, tuple(int(i) for i in np.argsort(order))
