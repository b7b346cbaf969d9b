"""Lazy launches and automatic fusion on the CPU: the spec's three-kernel elementwise chain
(scale, bias, relu) on 16M float32, fused (one launch, no intermediate buffers) against the same
three kernels run one by one (alloy.config lazy off) and against numpy's np.maximum(x*2+1, 0); and
builtins with pointwise neighbours: al.silu(al.layernorm(x)) 4096x1024 (an epilogue into the row
kernel) and al.matmul followed by a bias+GELU kernel 512^3 (an epilogue into the GEMM), each fused
against the same calls unfused and against torch eager; and al.linear with its bias and GELU in the
GEMM's epilogue against torch's F.linear then GELU.

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


@al.kernel
def bias_gelu(x, bias, out: al.output, N, C, BLOCK: al.constexpr = BLOCK):
    """gelu_tanh(x + bias), bias broadcast along the rows of an (N / C, C) x."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    v = al.load(x + offs, mask=m) + al.load(bias + offs % C, mask=m)
    al.store(out + offs, 0.5 * v * (1.0 + al.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))), mask=m)


def _lazily(lazy: bool, fn):
    def timed():
        old = config.get().lazy
        config.set(lazy=lazy)
        try:
            return np.asarray(fn())
        finally:
            config.set(lazy=old)

    return timed


def builtin_rows(repeat: int) -> list[Row]:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(1)
    x = rng.standard_normal((4096, 1024), dtype=np.float32)
    g, b = rng.random(1024, dtype=np.float32), rng.random(1024, dtype=np.float32)
    tx, tg, tb = (torch.from_numpy(v) for v in (x, g, b))
    norm_silu = (lambda: al.silu(al.layernorm(x, g, b)))
    a = rng.standard_normal((512, 512), dtype=np.float32)
    w = rng.standard_normal((512, 512), dtype=np.float32)
    bias = rng.standard_normal(512, dtype=np.float32)
    ta, tw, tbias = (torch.from_numpy(v) for v in (a, w, bias))

    def gemm_bias_gelu():
        h = al.matmul(a, w)
        return bias_gelu[al.cdiv(h.size if hasattr(h, "size") else 512 * 512, BLOCK)](h, bias, N=512 * 512, C=512)

    wt = np.ascontiguousarray(w.T)  # (N, K), as a Linear layer stores its weight
    rows = []
    for name, fn, peer, want, shape in (
            ("al.linear(x, w, bias, 'gelu_tanh'), 512^3 f32", lambda: al.linear(a, wt, bias, "gelu_tanh"),
             lambda: F.gelu(F.linear(ta, torch.from_numpy(wt), tbias), approximate="tanh"),
             F.gelu(ta @ tw + tbias, approximate="tanh").numpy(), (512, 512)),
            ("al.silu(al.layernorm(x)) fused, 4096x1024 f32", norm_silu,
             lambda: F.silu(F.layer_norm(tx, (1024,), tg, tb)), F.silu(F.layer_norm(tx, (1024,), tg, tb)).numpy(),
             (4096, 1024)),
            ("al.matmul + bias+GELU kernel fused, 512^3 f32", gemm_bias_gelu,
             lambda: F.gelu(ta @ tw + tbias, approximate="tanh"), F.gelu(ta @ tw + tbias, approximate="tanh").numpy(),
             (512, 512))):
        with al.profile() as p:
            got = _lazily(True, fn)()
        ok = np.allclose(got.reshape(shape), want, rtol=1e-4, atol=1e-4) and p.launches == 1
        t = compare({"fused": _lazily(True, fn), "unfused": _lazily(False, fn), "torch": peer}, repeat=repeat)
        note = f"{'' if ok else 'WRONG; '}fused: {p.launches} launch, {p.fused} fused away, {p.allocations} allocations"
        rows += [Row(name, t["fused"], "the same calls unfused (lazy off)", t["unfused"], "speed", None, note),
                 Row(name, t["fused"], "torch eager (2 threads)", t["torch"], "speed", None, "")]
    return rows


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
                "numpy allocates its 3 temporaries too")] + builtin_rows(repeat)


if __name__ == "__main__":
    print_rows(run())
