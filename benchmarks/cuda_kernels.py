"""CUDA target vs PyTorch eager on one GPU: vector add, row softmax, layernorm, fp16 matmul.

    python benchmarks/cuda_kernels.py                 # on a GPU machine: time Alloy and torch
    python benchmarks/cuda_kernels.py --compile-only  # without a GPU: compile every kernel's PTX into
                                                      # the kernel cache (ALLOY_CACHE_DIR) to carry over

Times are CUDA-event timings of back-to-back calls after warm-up (see _time); each line gives the
ratio torch_time / alloy_time (> 1: Alloy is faster) and checks the result.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

import alloy as al
import alloy.config
from alloy.runtime import cuda


@al.kernel
def vector_add(x, y, out: al.output, N, BLOCK: al.constexpr = 2048):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) + al.load(y + offs, mask=m), mask=m)


@al.kernel
def softmax(x, out: al.output, n_cols, OUT: al.constexpr, BLOCK: al.constexpr):
    row = al.program_id(0)
    cols = al.arange(0, BLOCK)
    m = cols < n_cols
    v = al.cast(al.load(x + row * n_cols + cols, mask=m, other=-float("inf")), al.float32)
    e = al.exp(v - al.max(v, axis=0))
    al.store(out + row * n_cols + cols, al.cast(e / al.sum(e, axis=0), OUT), mask=m)


@al.kernel
def layernorm(x, w, b, out: al.output, n_cols, eps, OUT: al.constexpr, BLOCK: al.constexpr):
    row = al.program_id(0)
    cols = al.arange(0, BLOCK)
    m = cols < n_cols
    v = al.cast(al.load(x + row * n_cols + cols, mask=m, other=0.0), al.float32)
    mean = al.sum(v, axis=0) / n_cols
    d = al.where(m, v - mean, 0.0)
    rstd = al.rsqrt(al.sum(d * d, axis=0) / n_cols + eps)
    y = d * rstd * al.cast(al.load(w + cols, mask=m), al.float32) + al.cast(al.load(b + cols, mask=m), al.float32)
    al.store(out + row * n_cols + cols, al.cast(y, OUT), mask=m)


@al.kernel
def softmax_rows(x, out: al.output, OUT: al.constexpr, BLOCK: al.constexpr, ROWS: al.constexpr):
    """ROWS rows per program: one [ROWS, BLOCK] tile, row reductions along axis 1."""
    n_rows, n_cols = x.shape
    rows = al.program_id(0) * ROWS + al.arange(0, ROWS)
    cols = al.arange(0, BLOCK)
    m = (rows[:, None] < n_rows) & (cols[None, :] < n_cols)
    offs = rows[:, None] * n_cols + cols[None, :]
    v = al.cast(al.load(x + offs, mask=m, other=-float("inf")), al.float32)
    e = al.exp(v - al.max(v, axis=1)[:, None])
    al.store(out + offs, al.cast(e * (1.0 / al.sum(e, axis=1))[:, None], OUT), mask=m)


@al.kernel
def layernorm_rows(x, w, b, out: al.output, eps, OUT: al.constexpr, BLOCK: al.constexpr, ROWS: al.constexpr):
    """ROWS rows per program; weight and bias are loaded once per program."""
    n_rows, n_cols = x.shape
    rows = al.program_id(0) * ROWS + al.arange(0, ROWS)
    cols = al.arange(0, BLOCK)
    cm = cols < n_cols
    m = (rows[:, None] < n_rows) & cm[None, :]
    offs = rows[:, None] * n_cols + cols[None, :]
    v = al.cast(al.load(x + offs, mask=m, other=0.0), al.float32)
    mean = al.sum(v, axis=1) / n_cols
    d = al.where(cm[None, :], v - mean[:, None], 0.0)
    rstd = al.rsqrt(al.sum(d * d, axis=1) / n_cols + eps)
    wv = al.cast(al.load(w + cols, mask=cm), al.float32)
    bv = al.cast(al.load(b + cols, mask=cm), al.float32)
    al.store(out + offs, al.cast(d * rstd[:, None] * wv[None, :] + bv[None, :], OUT), mask=m)


@al.kernel
def layernorm_loop(x, w, b, out: al.output, eps, OUT: al.constexpr, BLOCK: al.constexpr, ROWS: al.constexpr):
    """ROWS rows per program, one [BLOCK] row at a time with the next row's load issued first;
    weight and bias are loaded once per program."""
    n_rows, n_cols = x.shape
    cols = al.arange(0, BLOCK)
    cm = cols < n_cols
    wv = al.cast(al.load(w + cols, mask=cm), al.float32)
    bv = al.cast(al.load(b + cols, mask=cm), al.float32)
    first = al.program_id(0) * ROWS
    v = al.load(x + first * n_cols + cols, mask=cm & (first < n_rows), other=0.0)
    for i in range(ROWS):
        row = first + i
        nxt = al.load(x + (row + 1) * n_cols + cols, mask=cm & (i + 1 < ROWS) & (row + 1 < n_rows), other=0.0)
        f = al.cast(v, al.float32)
        mean = al.sum(f, axis=0) / n_cols
        d = al.where(cm, f - mean, 0.0)
        rstd = al.rsqrt(al.sum(d * d, axis=0) / n_cols + eps)
        al.store(out + row * n_cols + cols, al.cast(d * rstd * wv + bv, OUT), mask=cm & (row < n_rows))
        v = nxt


@al.kernel
def matmul(A, B_T, C: al.output, BLOCK_M: al.constexpr = 64, BLOCK_N: al.constexpr = 64,
           BLOCK_K: al.constexpr = 32, OUT: al.constexpr = al.float32):
    M, K = A.shape
    N = B_T.shape[0]
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rn = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    rk = al.arange(0, BLOCK_K)
    a_ptrs = A + rm[:, None] * K + rk[None, :]
    b_ptrs = B_T + rn[:, None] * K + rk[None, :]
    acc = al.zeros((BLOCK_M, BLOCK_N), dtype=al.float32)
    for k in range(0, K, BLOCK_K):
        a = al.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] + k < K))
        b = al.load(b_ptrs, mask=(rn[:, None] < N) & (rk[None, :] + k < K))
        acc += al.tile_dot(a, b, transpose_rhs=True)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
    al.store(C + rm[:, None] * N + rn[None, :], al.cast(acc, OUT), mask=(rm[:, None] < M) & (rn[None, :] < N))


ROWS, COLS = 8192, 4096
# BLOCK_M, BLOCK_N, BLOCK_K: K blocks of 32 or more take the sm_90a wgmma pipeline, 16-wide ones WMMA
# and the output dtype (torch.matmul's output is f16)
MATMUL_BLOCKS = ((128, 256, 64, al.float16), (128, 256, 64, al.float32), (128, 128, 64, al.float16),
                 (64, 128, 16, al.float32))
ROWS_PER_PROGRAM = (1, 2, 4)  # the sweep of softmax_rows / layernorm_rows
LOOP_ROWS = (4, 8, 16)  # the sweep of layernorm_loop


def compile_all() -> None:
    """Launch every benchmarked specialisation on tiny host arrays in compile-only mode."""
    cuda.compile_only(True)
    alloy.config.set(target="cuda")
    x = np.zeros(8, np.float32)
    vector_add[1](x, x, 8)
    for dt, out in ((np.float32, al.float32), (np.float16, al.float16)):
        a = np.zeros((2, 2), dt)
        softmax[2](a, 2, OUT=out, BLOCK=COLS)
        layernorm[2](a, np.zeros(2, dt), np.zeros(2, dt), 2, 1e-5, OUT=out, BLOCK=COLS)
        for r in ROWS_PER_PROGRAM:  # out= given, as run_all gives it (an output's spec is its rank)
            softmax_rows[1](a, out=a, OUT=out, BLOCK=COLS, ROWS=r)
            layernorm_rows[1](a, np.zeros(2, dt), np.zeros(2, dt), 1e-5, out=a, OUT=out, BLOCK=COLS, ROWS=r)
        for r in LOOP_ROWS:
            layernorm_loop[1](a, np.zeros(2, dt), np.zeros(2, dt), 1e-5, out=a, OUT=out, BLOCK=COLS, ROWS=r)
    h = np.zeros((2, 2), np.float16)
    for bm, bn, bk, out in MATMUL_BLOCKS:
        matmul[1, 1](h, h, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, OUT=out)
    for dt in (np.float32, np.float16):  # the builtins' specialisations at 8192x4096 (BLOCK 4096)
        a, v = np.zeros((2, COLS), dt), np.zeros(COLS, dt)
        al.softmax(a), al.layernorm(a, v, v), al.rms_norm(a, v)
    al.dot_transpose_rhs(h, h)
    al.linear(h, h, h[0].copy(), "gelu_tanh")
    print("compiled the CUDA benchmark kernels into", alloy.config.get().cache_dir)


def _time(fn, reps: int = 20) -> float:
    """Seconds per call: `reps` back-to-back calls between two CUDA events (launches queue up, so
    host-side launch cost shows only where it exceeds the kernel's time), median of 5 such runs."""
    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    runs = []
    for _ in range(5):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(reps):
            fn()
        e.record()
        e.synchronize()
        runs.append(s.elapsed_time(e) * 1e-3 / reps)
    return statistics.median(runs)


def _row(name: str, t_alloy: float, t_torch: float, work: str, ok: bool) -> None:
    print(f"{name:34s} alloy {t_alloy * 1e3:8.3f} ms   torch {t_torch * 1e3:8.3f} ms   "
          f"ratio {t_torch / t_alloy:5.2f}x   {work:22s} {'ok' if ok else 'MISMATCH'}", flush=True)


def _rows_variants(a, w, b, out) -> int:
    """Time softmax_rows / layernorm_rows (each ROWS_PER_PROGRAM) and layernorm_loop (each
    LOOP_ROWS) against torch; the number of mismatches. One line per ROWS, then each kernel's best."""
    import torch
    import torch.nn.functional as F

    dt = str(a.dtype)[6:]
    n_rows, n_cols = a.shape
    nbytes = 2 * a.numel() * a.element_size()
    res = torch.empty_like(a)
    ln_ref = F.layer_norm(a.float(), (n_cols,), w.float(), b.float(), 1e-5)
    ln_tol = 2e-2 if dt == "float16" else 1e-4
    cases = (("softmax_rows", softmax_rows, ROWS_PER_PROGRAM, (a,), lambda: torch.softmax(a, -1),
              torch.softmax(a.float(), -1), 1e-3 if dt == "float16" else 1e-6),
             ("layernorm_rows", layernorm_rows, ROWS_PER_PROGRAM, (a, w, b, 1e-5),
              lambda: F.layer_norm(a, (n_cols,), w, b, 1e-5), ln_ref, ln_tol),
             ("layernorm_loop", layernorm_loop, LOOP_ROWS, (a, w, b, 1e-5),
              lambda: F.layer_norm(a, (n_cols,), w, b, 1e-5), ln_ref, ln_tol))
    bad = 0
    for name, kern, sweep, args, peer, ref, atol in cases:
        tt = _time(peer)
        best = None
        for r in sweep:
            def call(r=r):
                kern[al.cdiv(n_rows, r)](*args, out=res, OUT=out, BLOCK=n_cols, ROWS=r)
            res.zero_()
            call()
            ok = bool(torch.allclose(res.float(), ref, atol=atol))
            ta = _time(call)
            _row(f"{name} {n_rows}x{n_cols} {dt[0]}{dt[-2:]} R={r}", ta, tt, f"{nbytes / ta / 1e9:.0f} GB/s", ok)
            bad += not ok
            best = min(best or (ta, r), (ta, r))
        print(f"  best {name} {dt}: ROWS={best[1]}, ratio {tt / best[0]:.2f}x", flush=True)
    return bad


def _builtins() -> int:
    """alloy.std's softmax / layernorm / rms_norm at 8192x4096 and dot_transpose_rhs at 4096^3 f16, called with
    torch CUDA tensors (each call allocates its output, as torch's does), against torch; mismatches."""
    import torch
    import torch.nn.functional as F

    bad = 0
    for tdt in (torch.float32, torch.float16):
        a = torch.randn(ROWS, COLS, device="cuda", dtype=tdt)
        w, b = torch.randn(COLS, device="cuda", dtype=tdt), torch.randn(COLS, device="cuda", dtype=tdt)
        tol = 2e-2 if tdt == torch.float16 else 1e-4
        cases = (("softmax", lambda: al.softmax(a), lambda: torch.softmax(a, -1)),
                 ("layernorm", lambda: al.layernorm(a, w, b), lambda: F.layer_norm(a, (COLS,), w, b, 1e-5)),
                 ("rms_norm", lambda: al.rms_norm(a, w)[0], lambda: F.rms_norm(a, (COLS,), w, 1e-6)))
        for name, ours, theirs in cases:
            ok = bool(torch.allclose(ours().float(), theirs().float(), atol=tol, rtol=tol))
            nbytes = 2 * a.numel() * a.element_size()
            ta, tt = _time(ours), _time(theirs)
            _row(f"al.{name} 8192x4096 {str(tdt)[6:]}", ta, tt, f"{nbytes / ta / 1e9:.0f} GB/s", ok)
            bad += not ok
        del a
    s = 4096
    A, B = (torch.randn(s, s, device="cuda", dtype=torch.float16) for _ in range(2))
    ok = bool(torch.allclose(al.dot_transpose_rhs(A, B).float(), A.float() @ B.float().T, atol=0.5, rtol=2e-2))
    ta, tt = _time(lambda: al.dot_transpose_rhs(A, B), reps=10), _time(lambda: torch.matmul(A, B.T), reps=10)
    _row("al.dot_transpose_rhs 4096^3 f16", ta, tt, f"{2 * s ** 3 / ta / 1e12:.0f} TFLOP/s", ok)
    bad += not ok
    bias = torch.randn(s, device="cuda", dtype=torch.float16)
    ref = F.gelu(A.float() @ B.float().T + bias.float(), approximate="tanh")
    ok = bool(torch.allclose(al.linear(A, B, bias, "gelu_tanh").float(), ref, atol=0.5, rtol=2e-2))
    ours = lambda: al.linear(A, B, bias, "gelu_tanh")  # noqa: E731
    ta = _time(ours, reps=10)
    for peer, theirs in (("matmul+bias, then GELU", lambda: F.gelu(torch.matmul(A, B.T) + bias, approximate="tanh")),
                         ("F.linear, then GELU", lambda: F.gelu(F.linear(A, B, bias), approximate="tanh"))):
        tt = _time(theirs, reps=10)
        _row(f"al.linear+bias+GELU 4096^3 f16 vs {peer}", ta, tt, f"{2 * s ** 3 / ta / 1e12:.0f} TFLOP/s", ok)
    return bad + (not ok)


def run_all() -> int:
    import torch
    import torch.nn.functional as F

    alloy.config.set(target="cuda")
    print(f"device: {torch.cuda.get_device_name(0)} (driver name: {cuda.device_name()})")
    bad = 0
    n = 1 << 28
    x, y = torch.rand(n, device="cuda"), torch.rand(n, device="cuda")
    z = vector_add[al.cdiv(n, 2048)](x, y, n)
    ok = bool(torch.equal(z, x + y))
    ta = _time(lambda: vector_add[al.cdiv(n, 2048)](x, y, n))
    tt = _time(lambda: torch.add(x, y))
    _row("vector add 2^28 f32", ta, tt, f"{3 * 4 * n / ta / 1e9:.0f} GB/s", ok)
    bad += not ok
    del x, y, z
    for tdt, out in ((torch.float32, al.float32), (torch.float16, al.float16)):
        a = torch.randn(ROWS, COLS, device="cuda", dtype=tdt)
        got = softmax[ROWS](a, COLS, OUT=out, BLOCK=COLS)
        ref = torch.softmax(a.float(), -1).to(tdt)
        ok = bool(torch.allclose(got.view(ROWS, COLS).float(), ref.float(), atol=1e-3 if tdt == torch.float16 else 1e-6))
        ta = _time(lambda: softmax[ROWS](a, COLS, OUT=out, BLOCK=COLS))
        tt = _time(lambda: torch.softmax(a, -1))
        nbytes = 2 * a.numel() * a.element_size()
        _row(f"softmax 8192x4096 {str(tdt)[6:]}", ta, tt, f"{nbytes / ta / 1e9:.0f} GB/s", ok)
        bad += not ok
        w = torch.randn(COLS, device="cuda", dtype=tdt)
        b = torch.randn(COLS, device="cuda", dtype=tdt)
        got = layernorm[ROWS](a, w, b, COLS, 1e-5, OUT=out, BLOCK=COLS)
        ref = F.layer_norm(a.float(), (COLS,), w.float(), b.float(), 1e-5)
        ok = bool(torch.allclose(got.view(ROWS, COLS).float(), ref, atol=2e-2 if tdt == torch.float16 else 1e-4))
        ta = _time(lambda: layernorm[ROWS](a, w, b, COLS, 1e-5, OUT=out, BLOCK=COLS))
        tt = _time(lambda: F.layer_norm(a, (COLS,), w, b, 1e-5))
        _row(f"layernorm 8192x4096 {str(tdt)[6:]}", ta, tt, f"{nbytes / ta / 1e9:.0f} GB/s", ok)
        bad += not ok
        bad += _rows_variants(a, w, b, out)
        del a
    s = 4096
    A = torch.randn(s, s, device="cuda", dtype=torch.float16)
    B = torch.randn(s, s, device="cuda", dtype=torch.float16)
    BT = B.t().contiguous()
    ref = A.float() @ B.float()
    tt = _time(lambda: torch.matmul(A, B), reps=10)
    for bm, bn, bk, out in MATMUL_BLOCKS:
        grid = (s // bm, s // bn)
        got = matmul[grid](A, BT, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, OUT=out)
        ok = bool(torch.allclose(got.float(), ref, atol=0.5, rtol=1e-2))
        ta = _time(lambda: matmul[grid](A, BT, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, OUT=out), reps=10)
        _row(f"matmul 4096^3 f16->{str(out)[3:]} {bm}x{bn}x{bk}", ta, tt, f"{2 * s ** 3 / ta / 1e12:.0f} TFLOP/s", ok)
        bad += not ok
    bad += _builtins()
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compile-only", action="store_true", help="fill the kernel cache; run nothing")
    args = ap.parse_args()
    if args.compile_only:
        compile_all()
        return 0
    return run_all()


if __name__ == "__main__":
    sys.exit(main())
