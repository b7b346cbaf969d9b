"""GEMM 1024x1024x1024 float32: Alloy's tiled `tile_dot` example kernel, a few block configurations,
vs numpy (OpenBLAS) limited to the same number of threads as Alloy's pool.

    python benchmarks/matmul.py

numpy is measured in a subprocess with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the
environment sets them on some processors for old OpenBLAS builds; they slow a current one)
and OPENBLAS_NUM_THREADS set to Alloy's thread count; the subprocess reports which OpenBLAS
kernel it ran (threadpoolctl). Prints ratios; asserts nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

import alloy as al
from alloy import config
from common import OPENBLAS_OVERRIDES, Row, Timing, compare, describe_blas, import_example, print_rows

M = N = K = 1024
CONFIGS = ((64, 64, 16), (32, 32, 32), (64, 32, 32), (128, 64, 16))
SETTLE = 0.25  # seconds between timed calls: OpenBLAS's idle threads spin ~0.1 s after a call

PEER = r"""
import json, sys, time
import numpy as np
n = int(sys.argv[1])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n), dtype=np.float32)
b = rng.standard_normal((n, n), dtype=np.float32)
c = np.empty((n, n), np.float32)
try:
    import threadpoolctl
    info = threadpoolctl.threadpool_info()
except ImportError:
    info = []
print(json.dumps(info), flush=True)
for _ in sys.stdin:  # one timed matmul per line read
    t0 = time.perf_counter()
    np.matmul(a, b, out=c)
    print(time.perf_counter() - t0, flush=True)
"""


class NumpyPeer:
    """numpy's 1024^3 matmul in a clean subprocess (OpenBLAS overrides unset, Alloy's thread count),
    timed there one call at a time so that it can be interleaved with Alloy's runs."""

    def __init__(self, threads: int):
        env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
        env["OPENBLAS_NUM_THREADS"] = str(threads)
        self.proc = subprocess.Popen([sys.executable, "-c", PEER, str(N)], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.blas = json.loads(self.proc.stdout.readline())

    def time_one(self) -> float:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def run(repeat: int = 8) -> list[Row]:
    matmul = import_example("matmul").matmul
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    b_t = np.ascontiguousarray(b.T)
    c = np.empty((M, N), np.float32)
    ref = a @ b

    sweep_fns, bad = {}, []
    for bm, bn, bk in CONFIGS:
        def launch(bm=bm, bn=bn, bk=bk):
            matmul[al.cdiv(M, bm), al.cdiv(N, bn)](a, b_t, C=c, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
        launch()  # compiles (or loads from the disk cache)
        if not np.allclose(c, ref, rtol=1e-3, atol=1e-3):
            bad.append((bm, bn, bk))
        sweep_fns[(bm, bn, bk)] = launch
    times = compare(sweep_fns, warmup=1, repeat=repeat)
    best = min(times, key=times.get)
    bm, bn, bk = best

    def alloy_best():
        t0 = time.perf_counter()
        matmul[al.cdiv(M, bm), al.cdiv(N, bn)](a, b_t, C=c, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
        return time.perf_counter() - t0

    def numpy_here():
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        return time.perf_counter() - t0

    threads = config.get().num_threads
    peer = NumpyPeer(threads)
    try:
        runs = {"alloy": [], "peer": [], "here": []}
        for _ in range(2):  # warm-up
            alloy_best(), peer.time_one(), numpy_here()
        for _ in range(2 * repeat):  # round-robin, so that outside load falls on all three alike
            for name, fn in (("alloy", alloy_best), ("peer", peer.time_one), ("here", numpy_here)):
                time.sleep(SETTLE)
                runs[name].append(fn())
    finally:
        peer.close()
    alloy_s, peer_s, here_s = (Timing(runs[k]) for k in ("alloy", "peer", "here"))
    gflops = lambda s: 2 * M * N * K / s / 1e9  # noqa: E731
    sweep = ", ".join(f"{bm}/{bn}/{bk}: {t * 1e3:.1f} ms" for (bm, bn, bk), t in times.items())
    check = f"WRONG RESULT for {bad}; " if bad else ""
    overrides = "set" if any(k in os.environ for k in OPENBLAS_OVERRIDES) else "not set"
    blas = describe_blas(peer.blas) or "BLAS unknown: threadpoolctl not installed"
    note = (f"{check}sweep (median of {repeat}, interleaved) {sweep}; interleaved: Alloy {gflops(alloy_s):.0f} "
            f"GFLOP/s, numpy {gflops(peer_s):.0f} GFLOP/s ({blas}); numpy in this process "
            f"(OpenBLAS overrides {overrides} here) {here_s * 1e3:.1f} ms")
    return [Row(f"matmul 1024^3 f32 (best BLOCK_M/N/K={bm}/{bn}/{bk})", alloy_s,
                f"numpy OpenBLAS, {threads} threads", peer_s, "speed", 0.5, note)]


if __name__ == "__main__":
    print_rows(run())
