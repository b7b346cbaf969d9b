"""Lazy launches and automatic fusion on the CPU: the spec's three-kernel elementwise chain
(scale, bias, relu) on 16M float32, fused (one launch, no intermediate buffers) against the same
three kernels run one by one (alloy.config lazy off) and against numpy's np.maximum(x*2+1, 0).

    python benchmarks/fusion.py

Goals (kernel-library issue): fused >= 2.5x unfused; fused >= 1.5x numpy. Prints ratios (medians
and best-of-N); asserts nothing.
"""
from __future__ import annotations

import numpy as np

import alloy as al
from alloy import config
from common import Row, compare, print_rows

N = 16 * 1024 * 1024
BLOCK = 4096


@al.kernel
def scale(x, out: al.output, N, BLOCK: al.constexpr = BLOCK):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) * 2.0, mask=m)


@al.kernel
def bias(x, out: al.output, N, BLOCK: al.constexpr = BLOCK):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) + 1.0, mask=m)


@al.kernel
def activate(x, out: al.output, N, BLOCK: al.constexpr = BLOCK):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.maximum(al.load(x + offs, mask=m), 0.0), mask=m)


def _chain(x):
    g = al.cdiv(x.size, BLOCK)
    return np.asarray(activate[g](bias[g](scale[g](x, N=x.size), N=x.size), N=x.size))


def _with_lazy(lazy: bool, x):
    old = config.get().lazy
    config.set(lazy=lazy)
    try:
        return _chain(x)
    finally:
        config.set(lazy=old)


def chain(x):
    """The chain with lazy launches: one fused kernel."""
    return _with_lazy(True, x)


def unfused(x):
    """The same three launches, each run when called."""
    return _with_lazy(False, x)


def run(repeat: int = 10) -> list[Row]:
    x = np.random.default_rng(0).standard_normal(N, dtype=np.float32)
    ref = np.maximum(x * 2 + 1, 0)
    with al.profile() as p:
        got = chain(x)
    check = "" if np.array_equal(got, ref) and (p.launches, p.fused, p.allocations) == (1, 2, 1) else "WRONG; "
    assert np.array_equal(unfused(x), ref)
    t = compare({"fused": lambda: chain(x), "unfused": lambda: unfused(x),
                 "numpy": lambda: np.maximum(x * 2 + 1, 0)}, repeat=repeat)
    note = f"{check}fused: {p.launches} launch, {p.fused} kernels fused away, {p.allocations} allocation"
    return [Row("3-kernel chain fused, 16M f32", t["fused"], "the same 3 kernels unfused", t["unfused"], "speed",
                2.5, note),
            Row("3-kernel chain fused, 16M f32", t["fused"], "numpy np.maximum(x*2+1, 0)", t["numpy"], "speed", 1.5,
                "numpy allocates its 3 temporaries too")]


if __name__ == "__main__":
    print_rows(run())
