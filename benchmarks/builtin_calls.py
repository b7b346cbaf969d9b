"""Per-call cost of the builtins at small shapes, where the Python path is the cost: `al.dot_transpose_rhs`
(32x64 @ (64x64)^T), `al.layernorm` and `al.softmax` (32x64 rows), called with numpy arrays and with
torch CPU tensors, each result read back, next to torch's eager ops on the same tensors (the peer:
`F.linear`, `F.layer_norm`, `torch.softmax`) and a plain `kernel[grid](...)` launch of a one-program
elementwise kernel; and `al.matmul(x, w.T)` with w.T a transposed view, against numpy's `x @ w.T`
(OpenBLAS, its default threads). Medians over batches, best batch beside.

    python benchmarks/builtin_calls.py

Prints; asserts nothing.
"""
from __future__ import annotations

import numpy as np

import alloy as al
from common import Row, Timing, per_call_time, print_rows

ITERS, BATCHES = 500, 7


@al.kernel
def add_one(x, out: al.output, N, BLOCK: al.constexpr = 2048):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    al.store(out + offs, al.load(x + offs, mask=offs < N) + 1.0, mask=offs < N)


def per_call(fn) -> Timing:
    return per_call_time(fn, iters=ITERS, repeat=BATCHES)


def _read(result):
    """Read a result back (runs a pending launch), as a caller would."""
    first = result[0] if isinstance(result, tuple) else result
    return first.numpy() if hasattr(first, "numpy") else np.asarray(first)


def run() -> list[Row]:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    a, b, x = (rng.standard_normal(s, dtype=np.float32) for s in ((32, 64), (64, 64), (32, 64)))
    w, bias = np.ones(64, np.float32), np.zeros(64, np.float32)
    ta, tb, tx, tw, tbias = (torch.from_numpy(v) for v in (a, b, x, w, bias))
    cases = [
        ("al.dot_transpose_rhs 32x64x64, numpy", lambda: _read(al.dot_transpose_rhs(a, b)),
         "F.linear", lambda: F.linear(ta, tb)),
        ("al.dot_transpose_rhs 32x64x64, torch", lambda: _read(al.dot_transpose_rhs(ta, tb)),
         "F.linear", lambda: F.linear(ta, tb)),
        ("al.layernorm 32x64, torch", lambda: _read(al.layernorm(tx, tw, tbias)),
         "F.layer_norm", lambda: F.layer_norm(tx, (64,), tw, tbias)),
        ("al.softmax 32x64, torch", lambda: _read(al.softmax(tx)),
         "torch.softmax", lambda: torch.softmax(tx, dim=-1)),
    ]
    out = []
    with torch.inference_mode():
        for name, alloy_fn, peer, peer_fn in cases:
            out.append(Row(name, per_call(alloy_fn), f"{peer} (eager)", per_call(peer_fn), "speed", None))
    big_x, big_w = rng.standard_normal((64, 2048), dtype=np.float32), rng.standard_normal((2048, 2048), dtype=np.float32)
    linear = (per_call_time(lambda: _read(al.matmul(big_x, big_w.T)), iters=5, repeat=BATCHES),
              per_call_time(lambda: big_x @ big_w.T, iters=5, repeat=BATCHES))
    out.append(Row("al.matmul 64x2048 @ w.T (2048x2048, a transposed view)", linear[0], "numpy x @ w.T", linear[1],
                   "speed", None))
    bare = per_call(lambda: _read(add_one[1](x, x.size)))
    out.append(Row("kernel[grid](...) one program, result read", bare, None, None, "max", None,
                   f"best batch {bare.best * 1e6:.1f} us"))
    return out


if __name__ == "__main__":
    print_rows(run())
