"""Thread-level (SIMT) kernels and their numpy references, shared by the CPU, CUDA and Metal tests.

`CASES[name](rng)` gives a Case: the kernel, its grid, arguments, keyword arguments (threads= among
them) and `check(outputs)`, which compares the launch's outputs with numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import ml_dtypes
import numpy as np

import alloy as al


@dataclass
class Case:
    kernel: object
    grid: tuple
    args: tuple
    kwargs: dict
    check: Callable  # (outputs as a tuple of numpy arrays, tolerance scale) -> None


def _close(got, ref, tol):
    np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=tol, atol=tol)


# ------------------------------------------------------------------ kernels
@al.kernel
def thread_ids(out: al.output):
    t = al.thread_id()
    base = (al.program_id(0) * al.num_threads() + t) * 4
    al.store(out + base, t)
    al.store(out + base + 1, al.simd_lane())
    al.store(out + base + 2, al.simd_group())
    al.store(out + base + 3, al.simd_size())


@al.kernel
def reverse_block(x, out: al.output, N):
    t = al.thread_id()
    nt = al.num_threads()
    i = al.program_id(0) * nt + t
    buf = al.shared(1024)
    buf[t] = al.load(x + i, mask=i < N, other=0.0)
    al.barrier()
    al.store(out + i, buf[nt - 1 - t], mask=i < N)


@al.kernel
def rotate_steps(x, out: al.output, STEPS: al.constexpr):
    """A per-thread value carried by a loop around barriers: each step reads the neighbour's."""
    t = al.thread_id()
    nt = al.num_threads()
    i = al.program_id(0) * nt + t
    buf = al.shared(1024)
    v = al.load(x + i)
    for _ in range(STEPS):
        buf[t] = v
        al.barrier()
        v = buf[(t + 1) % nt] * 2.0
        al.barrier()
    al.store(out + i, v)


@al.kernel
def local_weights(x, out: al.output):
    """A per-thread array written, then read back across a barrier."""
    t = al.thread_id()
    i = al.program_id(0) * al.num_threads() + t
    loc = al.local(8)
    al.copy4(loc, 0, x + i * 8)
    al.copy4(loc, 4, x + i * 8 + 4)
    al.barrier()
    s = 0.0
    for k in range(8):
        s += loc[7 - k] * k
    al.store(out + i, s)


@al.kernel
def staged_sum(x, out: al.output, N):
    """coop_load a block into shared memory, then each thread sums a window of it."""
    nt = al.num_threads()
    base = al.program_id(0) * nt
    buf = al.shared(1024)
    al.coop_load(buf, x + base, al.minimum(nt, N - base))
    t = al.thread_id()
    i = base + t
    s = 0.0
    for k in range(4):
        j = t + k
        if j < nt:
            if base + j < N:
                s += buf[j]
    al.store(out + i, s, mask=i < N)


@al.kernel
def shuffles(x, by_lane: al.output, by_xor: al.output):
    i = al.program_id(0) * al.num_threads() + al.thread_id()
    v = al.load(x + i)
    al.store(by_lane + i, al.simd_shuffle(v, al.simd_lane() * 5 + 1))
    al.store(by_xor + i, al.simd_shuffle_xor(v, 5))


@al.kernel
def simd_reductions(x, sums: al.output, maxs: al.output, mins: al.output):
    i = al.program_id(0) * al.num_threads() + al.thread_id()
    v = al.load(x + i)
    al.store(sums + i, al.simd_reduce(v))
    al.store(maxs + i, al.simd_reduce(v, op="max"))
    al.store(mins + i, al.simd_reduce(v, op="min"))


@al.kernel
def block_sum(x, out: al.output, N):
    """A threadgroup's sum: SIMD-group reductions, their partial sums through shared memory."""
    t = al.thread_id()
    i = al.program_id(0) * al.num_threads() + t
    partial = al.shared(32)
    v = al.simd_reduce(al.load(x + i, mask=i < N, other=0.0))
    if al.simd_lane() == 0:
        partial[al.simd_group()] = v
    al.barrier()
    if t == 0:
        s = 0.0
        for g in range(al.num_threads() // al.simd_size()):
            s += partial[g]
        al.store(out + al.program_id(0), s)


@al.kernel
def simd_gemm(A, B, C: al.output, M, N, K, ACC: al.constexpr = al.float32):
    """C = A @ B: a threadgroup of 4 SIMD groups computes a 16x16 tile of C, one 8x8 SIMD-group matrix
    each, over K in steps of 8 staged through shared memory."""
    t = al.thread_id()
    nt = al.num_threads()
    row0 = al.program_id(0) * 16
    col0 = al.program_id(1) * 16
    sa = al.shared(16 * 8, A.dtype)
    sb = al.shared(8 * 16, B.dtype)
    sc = al.shared(16 * 16, ACC)
    g = al.simd_group()
    tm = g // 2
    tn = g % 2
    acc = al.simd_matrix(ACC)
    for k0 in range(0, K, 8):
        for e in range(t, 128, nt):
            r = row0 + e // 8
            c = k0 + e % 8
            sa[e] = al.load(A + r * K + c, mask=(r < M) & (c < K), other=0.0)
            r2 = k0 + e // 16
            c2 = col0 + e % 16
            sb[e] = al.load(B + r2 * N + c2, mask=(r2 < K) & (c2 < N), other=0.0)
        al.barrier()
        a = al.simd_load(sa, tm * 64, 8)
        b = al.simd_load(sb, tn * 8, 16)
        acc = al.simd_mma(acc, a, b)
        al.barrier()
    al.simd_store(acc, sc, tm * 128 + tn * 8, 16)
    al.barrier()
    for e in range(t, 256, nt):
        r = row0 + e // 16
        c = col0 + e % 16
        al.store(C + r * N + c, sc[e], mask=(r < M) & (c < N))


@al.kernel
def butterfly_all_sum(x, out: al.output):
    """A while loop around barriers carrying a per-thread value: each round adds the partner's partial
    (thread t ^ s), so after log2(threads) rounds every thread holds its block's sum."""
    t = al.thread_id()
    nt = al.num_threads()
    i = al.program_id(0) * nt + t
    buf = al.shared(1024)
    acc = al.load(x + i)
    s = 1
    while s < nt:
        buf[t] = acc
        al.barrier()
        acc = acc + buf[t ^ s]
        al.barrier()
        s = s * 2
    al.store(out + i, acc)


@al.kernel
def reverse_rounds(x, out: al.output, ROUNDS: al.constexpr):
    """Per-thread pointers carried by a loop around barriers: each round reverses the next chunk of
    threads elements in shared memory and moves both pointers on."""
    t = al.thread_id()
    nt = al.num_threads()
    src = x + al.program_id(0) * nt * ROUNDS + t
    dst = out + al.program_id(0) * nt * ROUNDS + t
    buf = al.shared(1024)
    for _ in range(ROUNDS):
        buf[t] = al.load(src)
        al.barrier()
        al.store(dst, buf[nt - 1 - t])
        al.barrier()
        src += nt
        dst += nt


# ------------------------------------------------------------------ cases
def case_thread_ids(rng, threads=128):
    def check(outs, tol):
        got = np.asarray(outs[0]).reshape(-1, 4)
        t = np.tile(np.arange(threads), 3)
        np.testing.assert_array_equal(got, np.stack([t, t % 32, t // 32, np.full_like(t, 32)], 1))
    return Case(thread_ids, (3,), (), dict(threads=threads), check)


def case_reverse(rng, threads=256):
    n = 3 * threads - 5
    x = rng.standard_normal(n).astype(np.float32)

    def check(outs, tol):
        pad = np.zeros(3 * threads, np.float32)
        pad[:n] = x
        _close(outs[0], pad.reshape(3, threads)[:, ::-1].reshape(-1)[:n], 0)
    return Case(reverse_block, (3,), (x, n), dict(threads=threads), check)


def case_rotate(rng, threads=64):
    x = rng.standard_normal(2 * threads).astype(np.float32)

    def check(outs, tol):
        ref = np.roll(x.reshape(2, threads), -3, axis=1).reshape(-1) * 8
        _close(outs[0], ref, 1e-6)
    return Case(rotate_steps, (2,), (x,), dict(STEPS=3, threads=threads), check)


def case_butterfly(rng, threads=64):
    x = rng.standard_normal(3 * threads).astype(np.float32)

    def check(outs, tol):
        _close(outs[0], np.repeat(x.astype(np.float64).reshape(3, threads).sum(1), threads), 1e-5 * tol)
    return Case(butterfly_all_sum, (3,), (x,), dict(threads=threads), check)


def case_reverse_rounds(rng, threads=64):
    x = rng.standard_normal(2 * 3 * threads).astype(np.float32)

    def check(outs, tol):
        _close(outs[0], x.reshape(-1, threads)[:, ::-1].reshape(-1), 0)
    return Case(reverse_rounds, (2,), (x,), dict(out=np.zeros_like(x), ROUNDS=3, threads=threads), check)


def case_local(rng, threads=32):
    x = rng.standard_normal(2 * threads * 8).astype(np.float32)

    def check(outs, tol):
        _close(outs[0], x.reshape(-1, 8)[:, ::-1] @ np.arange(8.0), 1e-5 * tol)
    return Case(local_weights, (2,), (x,), dict(threads=threads), check)


def case_staged(rng, threads=128):
    n = 2 * threads - 7
    x = rng.standard_normal(n).astype(np.float32)

    def check(outs, tol):
        ref = np.zeros(n)
        for p in range(2):
            blk = x[p * threads:(p + 1) * threads].astype(np.float64)
            for t in range(min(threads, n - p * threads)):
                ref[p * threads + t] = blk[t:t + 4].sum()
        _close(outs[0], ref, 1e-5 * tol)
    return Case(staged_sum, (2,), (x, n), dict(threads=threads), check)


def case_shuffles(rng, threads=64):
    x = rng.standard_normal(threads).astype(np.float32)

    def check(outs, tol):
        lane = np.arange(threads) % 32
        group = np.arange(threads) // 32 * 32
        _close(outs[0], x[group + ((lane * 5 + 1) & 31)], 0)
        _close(outs[1], x[group + (lane ^ 5)], 0)
    return Case(shuffles, (1,), (x,), dict(threads=threads), check)


def case_reductions(rng, dtype=np.float32, threads=96):
    x = (rng.standard_normal(threads) * 10).astype(dtype)

    def check(outs, tol):
        g = x.astype(np.float64).reshape(-1, 32)
        for got, fn in zip(outs, (np.sum, np.max, np.min)):
            ref = np.repeat(fn(g, axis=1), 32)
            t = 0 if fn is not np.sum else (1e-5 if dtype == np.float32 else 2e-2 if dtype == np.float16 else 0)
            _close(got, ref, t * max(1.0, np.abs(ref).max()))
    return Case(simd_reductions, (1,), (x,), dict(threads=threads), check)


def case_block_sum(rng, threads=256):
    n = 4 * threads - 9
    x = rng.standard_normal(n).astype(np.float32)

    def check(outs, tol):
        pad = np.zeros(4 * threads)
        pad[:n] = x
        _close(outs[0], pad.reshape(4, threads).sum(1), 1e-4 * tol)
    return Case(block_sum, (4,), (x, n), dict(threads=threads), check)


def case_gemm(rng, dtype=np.float32, acc=al.float32, shape=(40, 36, 20)):
    m, n, k = shape
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    c = np.zeros((m, n), acc.np)

    def check(outs, tol):
        ref = a.astype(np.float64) @ b.astype(np.float64)
        t = 1e-5 if dtype == np.float32 and acc == al.float32 else 3e-2 if acc != al.float32 else 2e-3
        _close(outs[0], ref, t * tol * np.sqrt(k))
    return Case(simd_gemm, (al.cdiv(m, 16), al.cdiv(n, 16)), (a, b),
                dict(C=c, M=m, N=n, K=k, ACC=acc, threads=128), check)


CASES = {
    "thread_ids": case_thread_ids,
    "reverse": case_reverse,
    "rotate": case_rotate,
    "butterfly_while": case_butterfly,
    "reverse_rounds_pointers": case_reverse_rounds,
    "local": case_local,
    "staged": case_staged,
    "shuffles": case_shuffles,
    "reductions_f32": case_reductions,
    "reductions_i32": lambda rng: case_reductions(rng, np.int32),
    "reductions_f16": lambda rng: case_reductions(rng, np.float16),
    "block_sum": case_block_sum,
    "block_sum_default_threads": lambda rng: _default_threads(case_block_sum(rng)),
    "gemm_f32": case_gemm,
    "gemm_f16_f32acc": lambda rng: case_gemm(rng, np.float16, al.float32),
    "gemm_f16_f16acc": lambda rng: case_gemm(rng, np.float16, al.float16),
    "gemm_bf16": lambda rng: case_gemm(rng, ml_dtypes.bfloat16, al.float32),
}


def _default_threads(case: Case) -> Case:
    case.kwargs.pop("threads")
    return case


def run(case: Case):
    """Launch a case; its outputs as a tuple."""
    out = case.kernel[case.grid](*case.args, **case.kwargs)
    return out if isinstance(out, tuple) else (out,)
