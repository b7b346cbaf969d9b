"""The builtins (alloy.std) on the CPU against torch's CPU ops (same process, its default intra-op
threads) and, for the GEMM, numpy's OpenBLAS in a clean subprocess limited to Alloy's threads.

    python benchmarks/std_builtins.py

Goals (kernel-library issue): softmax / layernorm / rms_norm 4096x1024 f32 >= 1.0x torch;
dot_transpose_rhs 1024^3 f32 >= 0.8x OpenBLAS. Prints ratios (medians and best-of-N); asserts nothing.
"""
from __future__ import annotations

import time

import numpy as np

import alloy as al
from alloy import config
from common import Row, Timing, compare, print_rows
from matmul import SETTLE, NumpyPeer

ROWS, COLS = 4096, 1024


def rows(repeat: int) -> list[Row]:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, COLS), dtype=np.float32)
    w, b = rng.standard_normal(COLS, dtype=np.float32), rng.standard_normal(COLS, dtype=np.float32)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
    cases = {
        "softmax": (lambda: al.softmax(x), lambda: torch.softmax(xt, -1), "torch.softmax"),
        "layernorm": (lambda: al.layernorm(x, w, b), lambda: F.layer_norm(xt, (COLS,), wt, bt),
                      "F.layer_norm"),
        "rms_norm": (lambda: al.rms_norm(x, w), lambda: F.rms_norm(xt, (COLS,), wt, 1e-6), "F.rms_norm"),
    }
    out = []
    for name, (ours, theirs, peer) in cases.items():
        got = ours()
        got = np.asarray(got[0] if isinstance(got, tuple) else got)
        check = "" if np.allclose(got, theirs().numpy(), atol=1e-4, rtol=1e-4) else "WRONG RESULT; "
        t = compare({"alloy": ours, "torch": theirs}, repeat=repeat)
        out.append(Row(f"al.{name} 4096x1024 f32", t["alloy"], f"{peer} ({torch.get_num_threads()} threads)",
                       t["torch"], "speed", 1.0, f"{check}both allocate their output"))
    return out


def gemm(repeat: int) -> Row:
    n = 1024
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    got = np.asarray(al.dot_transpose_rhs(a, b))
    check = "" if np.allclose(got, a @ b.T, rtol=1e-3, atol=1e-3) else "WRONG RESULT; "

    def ours():
        t0 = time.perf_counter()
        al.dot_transpose_rhs(a, b)
        return time.perf_counter() - t0

    threads = config.get().num_threads
    peer = NumpyPeer(threads)
    try:
        runs = {"alloy": [], "peer": []}
        for _ in range(2):
            ours(), peer.time_one()
        for _ in range(repeat):
            for name, fn in (("alloy", ours), ("peer", peer.time_one)):
                time.sleep(SETTLE)
                runs[name].append(fn())
    finally:
        peer.close()
    from alloy.std import gemm as gemm_module

    chosen = gemm_module.TUNERS["dot_transpose_rhs"]._chosen
    blocks = next(iter(chosen.values())).constexprs if chosen else {}
    return Row("al.dot_transpose_rhs 1024^3 f32", Timing(runs["alloy"]), f"numpy OpenBLAS, {threads} threads",
               Timing(runs["peer"]), "speed", 0.8, f"{check}blocks from the tuning table: {blocks}")


def run(repeat: int = 20) -> list[Row]:
    return rows(repeat) + [gemm(max(repeat // 2, 6))]


if __name__ == "__main__":
    print_rows(run())
