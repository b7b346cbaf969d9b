"""End-to-end tests of the CPU lowering: hand-built tile IR -> .so -> ctypes launch, checked against numpy."""
from __future__ import annotations

import math
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cpu_harness import T, bcast, build, col, compile_so, const, full, launch, lt, offsets, ptrs, row, run
from mlir.dialects import arith, scf
from mlir.dialects import math as mmath

from alloy.dialects import tile

FLOATS = {"f32": np.float32, "f16": np.float16, "f64": np.float64}
INTS = {"i32": np.int32, "i64": np.int64, "i8": np.int8, "i16": np.int16}
RNG = np.random.default_rng(0)


def _data(np_t, n):
    if np_t == ml_dtypes.bfloat16 or np.issubdtype(np_t, np.floating):
        return RNG.standard_normal(n).astype(np_t)
    return RNG.integers(-50, 50, n).astype(np_t)


def _is_float(t: str) -> bool:
    return t in FLOATS or t == "bf16"


# ----------------------------------------------------------------- elementwise
@pytest.mark.parametrize("t", list(FLOATS) + list(INTS) + ["bf16"])
@pytest.mark.parametrize("n", [1000, 128])
def test_vector_add_masked(t, n):
    B = 128

    def body(x, y, z, n_):
        offs = offsets(0, B)
        mask = lt(offs, tile.splat(n_, [B]))
        a = tile.load(ptrs(x, offs), mask)
        b = tile.load(ptrs(y, offs), mask, full(0, [B], t) if not _is_float(t) else full(0.0, [B], t))
        s = arith.addf(a, b) if _is_float(t) else arith.addi(a, b)
        tile.store(ptrs(z, offs), s, mask)

    m = build("vadd", [f"!tile.ptr<{t}>"] * 3 + ["i32"], body)
    np_t = {**FLOATS, **INTS, "bf16": ml_dtypes.bfloat16}[t]
    x, y = _data(np_t, n), _data(np_t, n)
    z = np.full(n + 7, 99, np_t)  # the tail beyond n must stay untouched
    run(m, [x, y, z, n], [(n + B - 1) // B])
    np.testing.assert_array_equal(z[:n], x + y)
    assert (z[n:] == 99).all()


def test_vector_add_scalar_argument_and_unmasked():
    """z = x * alpha + 1 over exactly 4 blocks (no mask: plain vector loads/stores)."""
    B = 64

    def body(x, z, alpha):
        offs = offsets(0, B)
        a = tile.load(ptrs(x, offs))
        r = arith.addf(arith.mulf(a, tile.splat(alpha, [B])), full(1.0, [B], "f32"))
        tile.store(ptrs(z, offs), r)

    m = build("axpb", ["!tile.ptr<f32>", "!tile.ptr<f32>", "f32"], body)
    x = _data(np.float32, 4 * B)
    z = np.zeros_like(x)
    run(m, [x, z, np.float32(2.5)], [4])
    np.testing.assert_allclose(z, x * 2.5 + 1, rtol=1e-6, atol=1e-6)  # FMA-contracted


# -------------------------------------------------------------- 2-D accesses
def _block_2d(x, ld, M, N, BM, BN):
    rows = offsets(0, BM)
    cols = offsets(1, BN)
    mask = arith.andi(bcast(col(lt(rows, tile.splat(M, [BM]))), [BM, BN]),
                      bcast(row(lt(cols, tile.splat(N, [BN]))), [BM, BN]))
    off = arith.addi(bcast(col(arith.muli(rows, tile.splat(ld, [BM]))), [BM, BN]), bcast(row(cols), [BM, BN]))
    return rows, cols, mask, tile.addptr(tile.splat(x, [BM, BN]), off)


@pytest.mark.parametrize("mode", ["scatter", "trans"])
def test_2d_strided_transpose(mode):
    """out[j, i] = 2 * x[i, j] for an M x N view with row stride ld; blocks 16 x 8."""
    BM, BN = 16, 8

    def body(x, out, M, N, ld):
        rows, cols, mask, p = _block_2d(x, ld, M, N, BM, BN)
        v = arith.mulf(tile.load(p, mask), full(2.0, [BM, BN], "f32"))
        if mode == "scatter":  # out + cols[None, :] * M + rows[:, None]: stride 1 along dim 0
            off = arith.addi(bcast(row(arith.muli(cols, tile.splat(M, [BN]))), [BM, BN]), bcast(col(rows), [BM, BN]))
            tile.store(tile.addptr(tile.splat(out, [BM, BN]), off), v, mask)
        else:  # trans(v) stored through contiguous rows
            off = arith.addi(bcast(col(arith.muli(cols, tile.splat(M, [BN]))), [BN, BM]), bcast(row(rows), [BN, BM]))
            tile.store(tile.addptr(tile.splat(out, [BN, BM]), off), tile.trans(v), tile.trans(mask))

    m = build("tcopy", ["!tile.ptr<f32>", "!tile.ptr<f32>", "i32", "i32", "i32"], body)
    M, N, ld = 37, 21, 25
    x = _data(np.float32, M * ld).reshape(M, ld)
    out = np.zeros((N, M), np.float32)
    run(m, [x, out, M, N, ld], [(M + BM - 1) // BM, (N + BN - 1) // BN])
    np.testing.assert_array_equal(out, 2 * x[:, :N].T)


@pytest.mark.parametrize("masked", [False, True])
def test_row_broadcast_load(masked):
    """out[i, j] = x[i, j] * s[i]: s read through pointers of stride (1, 0)."""
    BM, BN = 8, 16

    def body(x, s, out, M, N):
        rows, cols, mask, p = _block_2d(x, N, M, N, BM, BN)
        sp = tile.addptr(tile.splat(s, [BM, BN]), bcast(col(rows), [BM, BN]))
        sv = tile.load(sp, mask) if masked else tile.load(sp)
        v = arith.mulf(tile.load(p, mask), sv)
        _, _, _, po = _block_2d(out, N, M, N, BM, BN)
        tile.store(po, v, mask)

    m = build("rowscale", ["!tile.ptr<f32>"] * 3 + ["i32", "i32"], body)
    M, N = (16, 32) if not masked else (13, 29)
    x = _data(np.float32, M * N).reshape(M, N)
    s = _data(np.float32, M)
    out = np.zeros_like(x)
    run(m, [x, s, out, M, N], [(M + BM - 1) // BM, (N + BN - 1) // BN])
    np.testing.assert_allclose(out, x * s[:, None], rtol=1e-6)


# ------------------------------------------------------------------ reductions
@pytest.mark.parametrize("t", ["f32", "i32", "f64"])
@pytest.mark.parametrize("kind", ["sum", "max", "min", "argmax", "argmin"])
@pytest.mark.parametrize("axis", [0, 1])
def test_reduce(t, kind, axis):
    R, C = 8, 32

    def body(x, out):
        off = arith.addi(bcast(col(arith.muli(tile.arange(0, R), full(C, [R], "i32"))), [R, C]),
                         bcast(row(tile.arange(0, C)), [R, C]))
        v = tile.load(tile.addptr(tile.splat(x, [R, C]), off))
        r = tile.reduce(v, axis, kind)
        n = C if axis == 0 else R
        tile.store(ptrs(out, tile.arange(0, n)), r)

    rt = "i32" if kind.startswith("arg") else t
    m = build("red", [f"!tile.ptr<{t}>", f"!tile.ptr<{rt}>"], body)
    np_t = {"f32": np.float32, "i32": np.int32, "f64": np.float64}[t]
    x = _data(np_t, R * C).reshape(R, C)
    x[1, 3] = x[2, 3] = x.max() + 1  # ties: the first index wins
    out = np.zeros(C if axis == 0 else R, {"i32": np.int32}.get(rt, np_t))
    run(m, [x, out], [1])
    ref = getattr(np, kind)(x, axis=axis)
    if np.issubdtype(np_t, np.floating) and kind == "sum":
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(out, ref)


def test_reduce_nan_and_scalar_result():
    """A 1-D max reduction to a scalar propagates NaN like numpy; argmax finds the first NaN."""
    N = 64

    def body(x, out, idx):
        v = tile.load(ptrs(x, tile.arange(0, N)))
        tile.store(out, tile.reduce(v, 0, "max"))
        tile.store(idx, tile.reduce(v, 0, "argmax"))

    m = build("rnan", ["!tile.ptr<f32>", "!tile.ptr<f32>", "!tile.ptr<i32>"], body)
    fn = compile_so(m)
    x = _data(np.float32, N)
    out, idx = np.zeros(1, np.float32), np.zeros(1, np.int32)
    launch(fn, [x, out, idx], [1])
    assert out[0] == x.max() and idx[0] == x.argmax()
    x[[9, 20]] = np.nan
    launch(fn, [x, out, idx], [1])
    assert np.isnan(out[0]) and idx[0] == 9


# ------------------------------------------------------------------------ dot
def _matmul_kernel(t: str, BM=64, BN=64, BK=16):
    """The spec's matmul: C = A @ B_T.T with A (M, K), B_T (N, K), 64x64x16 blocks, masked edges."""

    def body(a, bt, c, M, N, K):
        rm = offsets(0, BM)
        rn = offsets(1, BN)
        rk = tile.arange(0, BK)
        kk = tile.splat(K, [BK])
        a_off = arith.addi(bcast(col(arith.muli(rm, tile.splat(K, [BM]))), [BM, BK]), bcast(row(rk), [BM, BK]))
        b_off = arith.addi(bcast(col(arith.muli(rn, tile.splat(K, [BN]))), [BN, BK]), bcast(row(rk), [BN, BK]))
        a0 = tile.addptr(tile.splat(a, [BM, BK]), a_off)
        b0 = tile.addptr(tile.splat(bt, [BN, BK]), b_off)
        acc0 = full(0.0, [BM, BN], "f32")
        loop = scf.ForOp(const(0, "i32"), K, const(BK, "i32"), [a0, b0, acc0])
        from mlir import ir

        with ir.InsertionPoint(loop.body):
            k = loop.induction_variable
            pa, pb, acc = loop.inner_iter_args
            krem = arith.subi(kk, tile.splat(k, [BK]))
            ka = bcast(row(lt(rk, krem)), [BM, BK])
            kb = bcast(row(lt(rk, krem)), [BN, BK])
            am = arith.andi(bcast(col(lt(rm, tile.splat(M, [BM]))), [BM, BK]), ka)
            bm = arith.andi(bcast(col(lt(rn, tile.splat(N, [BN]))), [BN, BK]), kb)
            av = tile.load(pa, am, full(0.0, [BM, BK], t))
            bv = tile.load(pb, bm, full(0.0, [BN, BK], t))
            acc2 = tile.dot(av, tile.trans(bv), acc)
            step = full(BK, [BM, BK], "i32")
            scf.YieldOp([tile.addptr(pa, step), tile.addptr(pb, full(BK, [BN, BK], "i32")), acc2])
        c_off = arith.addi(bcast(col(arith.muli(rm, tile.splat(N, [BM]))), [BM, BN]), bcast(row(rn), [BM, BN]))
        cm = arith.andi(bcast(col(lt(rm, tile.splat(M, [BM]))), [BM, BN]), bcast(row(lt(rn, tile.splat(N, [BN]))), [BM, BN]))
        tile.store(tile.addptr(tile.splat(c, [BM, BN]), c_off), loop.results[2], cm)

    return build("matmul", [f"!tile.ptr<{t}>", f"!tile.ptr<{t}>", "!tile.ptr<f32>", "i32", "i32", "i32"], body)


@pytest.mark.parametrize("t", ["f32", "f16"])
@pytest.mark.parametrize("shape", [(100, 70, 40), (128, 64, 32)])
def test_matmul_64x64x16(t, shape):
    M, N, K = shape
    np_t = FLOATS[t]
    a = _data(np_t, M * K).reshape(M, K)
    bt = _data(np_t, N * K).reshape(N, K)
    c = np.zeros((M, N), np.float32)
    run(_matmul_kernel(t), [a, bt, c, M, N, K], [(M + 63) // 64, (N + 63) // 64])
    ref = a.astype(np.float64) @ bt.astype(np.float64).T
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("t,blocks", [("bf16", (16, 128, 64)), ("f32", (8, 24, 128)), ("f32", (32, 32, 8))])
def test_matmul_other_blockings(t, blocks):
    """Other block shapes: a K loop inside the micro-kernel, N not a multiple of 16, bf16 inputs."""
    M, N, K = 40, 50, 200
    np_t = {"bf16": ml_dtypes.bfloat16, "f32": np.float32}[t]
    a = _data(np_t, M * K).reshape(M, K)
    bt = _data(np_t, N * K).reshape(N, K)
    c = np.zeros((M, N), np.float32)
    BM, BN, BK = blocks
    run(_matmul_kernel(t, BM, BN, BK), [a, bt, c, M, N, K], [(M + BM - 1) // BM, (N + BN - 1) // BN])
    ref = a.astype(np.float64) @ bt.astype(np.float64).T
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-3)


# ----------------------------------------------------------- scalar control flow
def test_scalar_loop_if_while():
    """Per program i: out[i] = sum_{j < n, x[j] > 0} x[j] * i, and steps[i] = collatz steps of i + 1."""
    from mlir import ir

    def body(x, out, steps, n):
        pid = tile.program_id(0)
        fi = arith.sitofp(T("f32"), pid)
        loop = scf.ForOp(const(0, "i32"), n, const(1, "i32"), [const(0.0, "f32")])
        with ir.InsertionPoint(loop.body):
            j = loop.induction_variable
            xv = tile.load(tile.addptr(x, j))
            pos = arith.cmpf(arith.CmpFPredicate.OGT, xv, const(0.0, "f32"))
            iff = scf.IfOp(pos, [T("f32")], has_else=True)
            with ir.InsertionPoint(iff.then_block):
                scf.YieldOp([arith.addf(loop.inner_iter_args[0], arith.mulf(xv, fi))])
            with ir.InsertionPoint(iff.else_block):
                scf.YieldOp([loop.inner_iter_args[0]])
            scf.YieldOp([iff.results[0]])
        tile.store(tile.addptr(out, pid), loop.results[0])
        start = arith.addi(pid, const(1, "i32"))
        w = scf.WhileOp([T("i32"), T("i32")], [start, const(0, "i32")])
        before = w.before.blocks.append(T("i32"), T("i32"))
        with ir.InsertionPoint(before):
            v, c = before.arguments
            scf.ConditionOp(arith.cmpi(arith.CmpIPredicate.ne, v, const(1, "i32")), [v, c])
        after = w.after.blocks.append(T("i32"), T("i32"))
        with ir.InsertionPoint(after):
            v, c = after.arguments
            odd = arith.cmpi(arith.CmpIPredicate.eq, arith.remsi(v, const(2, "i32")), const(1, "i32"))
            nv = arith.select(odd, arith.addi(arith.muli(v, const(3, "i32")), const(1, "i32")),
                              arith.divsi(v, const(2, "i32")))
            scf.YieldOp([nv, arith.addi(c, const(1, "i32"))])
        tile.store(tile.addptr(steps, pid), w.results[1], lt(pid, n))

    m = build("scalar_cf", ["!tile.ptr<f32>", "!tile.ptr<f32>", "!tile.ptr<i32>", "i32"], body)
    n, G = 50, 12
    x = _data(np.float32, n)
    out = np.zeros(G, np.float32)
    steps = np.full(G, -1, np.int32)
    run(m, [x, out, steps, n], [G])
    np.testing.assert_allclose(out, [x[x > 0].sum() * i for i in range(G)], rtol=1e-5)

    def collatz(v):
        c = 0
        while v != 1:
            v, c = (3 * v + 1 if v % 2 else v // 2), c + 1
        return c

    np.testing.assert_array_equal(steps, [collatz(i + 1) for i in range(G)])


# --------------------------------------------------------------------- atomics
@pytest.mark.parametrize("t", ["i32", "f32"])
def test_atomic_add_histogram(t):
    """hist[idx[j]] += w[j] from many programs at once (masked tail); old values come back."""
    B, NB = 64, 10

    def body(idx, w, hist, old, n):
        offs = offsets(0, B)
        mask = lt(offs, tile.splat(n, [B]))
        bins = tile.load(ptrs(idx, offs), mask)
        wv = tile.load(ptrs(w, offs), mask)
        o = tile.atomic_rmw("add", ptrs(hist, bins), wv, mask)
        tile.store(ptrs(old, offs), o, mask)

    m = build("hist", ["!tile.ptr<i32>", f"!tile.ptr<{t}>", f"!tile.ptr<{t}>", f"!tile.ptr<{t}>", "i32"], body)
    np_t = {"i32": np.int32, "f32": np.float32}[t]
    n = 1000
    idx = RNG.integers(0, NB, n).astype(np.int32)
    w = RNG.integers(1, 5, n).astype(np_t)
    hist = np.zeros(NB, np_t)
    old = np.zeros(n, np_t)
    run(m, [idx, w, hist, old, n], [(n + B - 1) // B])
    np.testing.assert_array_equal(hist, np.bincount(idx, weights=w, minlength=NB).astype(np_t))
    # single-threaded launch: each old value is the running sum before the add
    run_sum = np.zeros(NB, np_t)
    ref = np.zeros(n, np_t)
    for j in range(n):
        ref[j] = run_sum[idx[j]]
        run_sum[idx[j]] += w[j]
    np.testing.assert_array_equal(old, ref)


@pytest.mark.parametrize("kind,t", [("max", "f32"), ("min", "i32"), ("max", "i32"), ("xchg", "f32")])
def test_atomic_max_min_xchg(kind, t):
    B = 32

    def body(x, dst, n):
        offs = offsets(0, B)
        mask = lt(offs, tile.splat(n, [B]))
        v = tile.load(ptrs(x, offs), mask)
        tile.atomic_rmw(kind, tile.splat(dst, [B]), v, mask)

    m = build("amax", [f"!tile.ptr<{t}>", f"!tile.ptr<{t}>", "i32"], body)
    np_t = {"i32": np.int32, "f32": np.float32}[t]
    n = 77
    x = _data(np_t, n)
    dst = np.zeros(1, np_t)
    run(m, [x, dst, n], [(n + B - 1) // B])
    expect = {"max": max(0, x.max()), "min": min(0, x.min()), "xchg": x[n - 1]}[kind]
    assert dst[0] == expect


@pytest.mark.parametrize("t", ["i32", "f32"])
def test_atomic_cas(t):
    """Lanes whose memory equals cmp take the new value; every lane returns the old value."""
    B = 16

    def body(mem, cmp, new, old):
        offs = tile.arange(0, B)
        o = tile.atomic_cas(ptrs(mem, offs), tile.load(ptrs(cmp, offs)), tile.load(ptrs(new, offs)))
        tile.store(ptrs(old, offs), o)

    m = build("cas", [f"!tile.ptr<{t}>"] * 4, body)
    np_t = {"i32": np.int32, "f32": np.float32}[t]
    mem = np.arange(B).astype(np_t)
    cmp = mem.copy()
    cmp[::2] += 1
    new = (100 + np.arange(B)).astype(np_t)
    old = np.zeros(B, np_t)
    before = mem.copy()
    run(m, [mem, cmp, new, old], [1])
    np.testing.assert_array_equal(old, before)
    np.testing.assert_array_equal(mem, np.where(before == cmp, new, before))


# ----------------------------------------------------------------------- casts
def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest even."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


@pytest.mark.parametrize("case", ["f16", "bf16", "sitofp", "fptosi", "uitofp", "ext_trunc", "bitcast"])
def test_casts(case):
    B = 64
    src_t, dst_t = {
        "f16": ("f32", "f16"), "bf16": ("f32", "bf16"), "sitofp": ("i32", "f32"), "fptosi": ("f32", "i32"),
        "uitofp": ("i8", "f32"), "ext_trunc": ("i16", "i8"), "bitcast": ("f32", "i32"),
    }[case]

    def body(x, y, back):
        offs = tile.arange(0, B)
        v = tile.load(ptrs(x, offs))
        st, dt = T(f"tensor<{B}x{src_t}>"), T(f"tensor<{B}x{dst_t}>")
        fn = {"f16": arith.truncf, "bf16": arith.truncf, "sitofp": arith.sitofp, "fptosi": arith.fptosi,
              "uitofp": arith.uitofp, "ext_trunc": arith.trunci, "bitcast": arith.bitcast}[case]
        inv = {"f16": arith.extf, "bf16": arith.extf, "sitofp": arith.fptosi, "fptosi": arith.sitofp,
               "uitofp": arith.fptoui, "ext_trunc": arith.extsi, "bitcast": arith.bitcast}[case]
        r = fn(dt, v)
        tile.store(ptrs(y, offs), r)
        tile.store(ptrs(back, offs), inv(st, r))

    m = build("cast", [f"!tile.ptr<{src_t}>", f"!tile.ptr<{dst_t}>", f"!tile.ptr<{src_t}>"], body)
    np_of = {"f32": np.float32, "f16": np.float16, "bf16": np.uint16, "i32": np.int32, "i8": np.int8, "i16": np.int16}
    if case == "uitofp":
        x = RNG.integers(-128, 128, B).astype(np.int8)
    elif src_t == "f32":
        x = (RNG.standard_normal(B) * 100).astype(np.float32)
    else:
        x = RNG.integers(-1000, 1000, B).astype(np_of[src_t])
    y = np.zeros(B, np_of[dst_t])
    back = np.zeros(B, np_of[src_t])
    run(m, [x, y, back], [1])
    if case == "f16":
        np.testing.assert_array_equal(y, x.astype(np.float16))
        np.testing.assert_array_equal(back, x.astype(np.float16).astype(np.float32))
    elif case == "bf16":
        np.testing.assert_array_equal(y, _bf16_bits(x))
        np.testing.assert_array_equal(back, (_bf16_bits(x).astype(np.uint32) << 16).view(np.float32))
    elif case == "sitofp":
        np.testing.assert_array_equal(y, x.astype(np.float32))
    elif case == "fptosi":
        np.testing.assert_array_equal(y, np.trunc(x).astype(np.int32))
    elif case == "uitofp":
        np.testing.assert_array_equal(y, x.view(np.uint8).astype(np.float32))
        np.testing.assert_array_equal(back, x)
    elif case == "ext_trunc":
        np.testing.assert_array_equal(y, x.astype(np.int8))
        np.testing.assert_array_equal(back, x.astype(np.int8).astype(np.int16))
    else:
        np.testing.assert_array_equal(y, x.view(np.int32))
        np.testing.assert_array_equal(back, x)


# ------------------------------------------------------------------------ math
_ERF = np.vectorize(math.erf)
UNARY = {
    "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x), "sin": np.sin, "cos": np.cos, "tanh": np.tanh, "erf": _ERF,
    "absf": np.abs, "floor": np.floor, "ceil": np.ceil,
}


@pytest.mark.parametrize("name", list(UNARY))
@pytest.mark.parametrize("t", ["f32", "f64"])
def test_math_unary(name, t):
    B = 128

    def body(x, y):
        offs = tile.arange(0, B)
        tile.store(ptrs(y, offs), getattr(mmath, name)(tile.load(ptrs(x, offs))))

    m = build("unary", [f"!tile.ptr<{t}>"] * 2, body)
    np_t = FLOATS[t]
    x = np.linspace(-6, 6, B).astype(np_t)
    if name in ("log", "log2", "sqrt", "rsqrt"):
        x = np.abs(x) + np_t(0.01)
    if name == "exp":
        x = np.linspace(-80, 80, B).astype(np_t)
    if name in ("erf", "tanh"):
        x[:8] = [0.0, 1e-6, -3e-4, 0.02, 3.9, 4.2, -9.0, 1e-30]  # tiny, near the clamp, beyond it
    y = np.zeros(B, np_t)
    run(m, [x, y], [1])
    ref = UNARY[name](x.astype(np.float64))
    tol = 2e-6 if t == "f32" else 1e-13
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)


def test_math_fma_and_scalar_math():
    B = 32

    def body(x, y, s):
        offs = tile.arange(0, B)
        v = tile.load(ptrs(x, offs))
        sv = mmath.sqrt(tile.load(s))
        tile.store(ptrs(y, offs), mmath.fma(v, v, tile.splat(sv, [B])))

    m = build("fma", ["!tile.ptr<f32>"] * 3, body)
    x = _data(np.float32, B)
    y = np.zeros(B, np.float32)
    s = np.array([4.0], np.float32)
    run(m, [x, y, s], [1])
    np.testing.assert_allclose(y, x * x + 2, rtol=1e-6)


# ------------------------------------------------------- strip-mined 1-D code
@pytest.mark.parametrize("t", ["f32", "f64", "i32"])
@pytest.mark.parametrize("n_cols", [512, 300])
def test_row_softmax_like(t, n_cols):
    """Per row: m = max(x), s = sum(x - m), out = (x - m) * s, plus min; x, the mask and the
    pointers cross between strip-mined loops (reductions end a loop)."""
    C = 512

    def body(x, out, mins, n, stride):
        row = tile.program_id(0)
        offs = tile.arange(0, C)
        mask = lt(offs, tile.splat(n, [C]))
        base = arith.muli(row, stride)
        lowest = float("-inf") if _is_float(t) else -(2 ** 31)
        v = tile.load(ptrs(tile.addptr(x, base), offs), mask, full(lowest, [C], t))
        m = tile.reduce(v, 0, "max")
        d = arith.subf(v, tile.splat(m, [C])) if _is_float(t) else arith.subi(v, tile.splat(m, [C]))
        zero = full(0.0 if _is_float(t) else 0, [C], t)
        d = arith.select(mask, d, zero)
        s = tile.reduce(d, 0, "sum")
        mn = tile.reduce(arith.select(mask, v, tile.splat(m, [C])), 0, "min")
        r = arith.mulf(d, tile.splat(s, [C])) if _is_float(t) else arith.muli(d, tile.splat(s, [C]))
        tile.store(ptrs(tile.addptr(out, base), offs), r, mask)
        tile.store(tile.addptr(mins, row), mn)

    m = build("rowsoft", [f"!tile.ptr<{t}>"] * 3 + ["i32", "i32"], body)
    np_t = {"f32": np.float32, "f64": np.float64, "i32": np.int32}[t]
    R = 6
    x = _data(np_t, R * C).reshape(R, C)
    out = np.full((R, C), 7, np_t)
    mins = np.zeros(R, np_t)
    run(m, [x, out, mins, n_cols, C], [R])
    xv = x[:, :n_cols].astype(np.float64)
    d = xv - xv.max(axis=1, keepdims=True)
    ref = d * d.sum(axis=1, keepdims=True)
    if _is_float(t):
        np.testing.assert_allclose(out[:, :n_cols], ref, rtol=1e-5, atol=1e-3)
    else:
        np.testing.assert_array_equal(out[:, :n_cols], ref.astype(np_t))
    assert (out[:, n_cols:] == 7).all()
    np.testing.assert_array_equal(mins, x[:, :n_cols].min(axis=1))


def test_strip_mined_order_in_place_and_store_then_load():
    """x[i] = x[i] * 2 in place, then y[i] = x[i + 1] (a load of the stored argument through other
    pointers must see every store of the previous whole-tile op)."""
    N = 256

    def body(x, y):
        offs = tile.arange(0, N)
        px = ptrs(x, offs)
        tile.store(px, arith.mulf(tile.load(px), full(2.0, [N], "f32")))
        shifted = ptrs(x, arith.addi(offs, full(1, [N], "i32")))
        tile.store(ptrs(y, offs), tile.load(shifted))

    m = build("inplace", ["!tile.ptr<f32>"] * 2, body)
    x = _data(np.float32, N + 1)
    y = np.zeros(N, np.float32)
    ref = x.copy()
    ref[:N] *= 2
    run(m, [x, y], [1])
    np.testing.assert_array_equal(x, ref)
    np.testing.assert_array_equal(y, ref[1:])


def test_exp_tanh_special_values():
    """The inline f32 exp/tanh: saturation, infinities, NaN, tiny and large arguments."""
    N = 64

    def body(x, e, th):
        offs = tile.arange(0, N)
        v = tile.load(ptrs(x, offs))
        tile.store(ptrs(e, offs), mmath.exp(v))
        tile.store(ptrs(th, offs), mmath.tanh(v))

    m = build("special", ["!tile.ptr<f32>"] * 3, body)
    vals = [0.0, -0.0, 1e-30, -1e-7, 0.5, -0.7, 1.0, 10.0, -10.0, 88.0, 88.8, 100.0, -87.0, -88.0, -100.0,
            np.inf, -np.inf, np.nan, 20.0, -20.0]
    x = np.zeros(N, np.float32)
    x[:len(vals)] = vals
    x[len(vals):] = np.linspace(-30, 30, N - len(vals))
    e, th = np.zeros(N, np.float32), np.zeros(N, np.float32)
    with np.errstate(over="ignore"):
        run(m, [x, e, th], [1])
        ref_e = np.exp(x.astype(np.float64)).astype(np.float32)
    ref_t = np.tanh(x.astype(np.float64)).astype(np.float32)
    tiny = np.abs(ref_e) < np.finfo(np.float32).tiny
    np.testing.assert_allclose(e[~tiny], ref_e[~tiny], rtol=3e-7)
    assert (e[tiny] <= np.finfo(np.float32).tiny).all()  # denormal results may flush to 0
    np.testing.assert_allclose(th, ref_t, rtol=3e-7, atol=1e-30)
    assert np.isnan(e[17]) and np.isnan(th[17])


def test_log_special_values():
    N = 32

    def body(x, y):
        offs = tile.arange(0, N)
        tile.store(ptrs(y, offs), mmath.log(tile.load(ptrs(x, offs))))

    m = build("logs", ["!tile.ptr<f32>"] * 2, body)
    vals = [0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 1e-40, 1e-45, 1.0, 2.0, 0.5, 3e38, 1.17549435e-38]
    x = np.ones(N, np.float32)
    x[:len(vals)] = vals
    x[len(vals):] = np.geomspace(1e-20, 1e20, N - len(vals))
    y = np.zeros(N, np.float32)
    run(m, [x, y], [1])
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.log(x.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(y, ref, rtol=3e-7)


def test_bool_arrays_and_mixed_ranks():
    """i1 tiles live in memory as bytes; a strip-mined 1-D result feeds 2-D ops and a 2-D reduction
    feeds strip-mined 1-D ops."""
    N, R = 128, 4

    def body(x, flags, out2d, colsum):
        offs = tile.arange(0, N)
        v = arith.mulf(tile.load(ptrs(x, offs)), full(2.0, [N], "f32"))
        pos = arith.cmpf(arith.CmpFPredicate.OGT, v, full(0.0, [N], "f32"))
        tile.store(ptrs(flags, offs), pos)
        back = tile.load(ptrs(flags, offs))
        v = arith.select(back, v, full(0.0, [N], "f32"))
        t = bcast(row(v), [R, N])
        scale = arith.sitofp(T(f"tensor<{R}x{N}xf32>"), bcast(col(tile.arange(0, R)), [R, N]))
        t = arith.mulf(t, scale)
        o2 = arith.addi(bcast(col(arith.muli(tile.arange(0, R), full(N, [R], "i32"))), [R, N]), bcast(row(offs), [R, N]))
        tile.store(tile.addptr(tile.splat(out2d, [R, N]), o2), t)
        cs = tile.reduce(t, 0, "sum")
        tile.store(ptrs(colsum, offs), arith.addf(cs, full(1.0, [N], "f32")))

    m = build("mixed", ["!tile.ptr<f32>", "!tile.ptr<i1>", "!tile.ptr<f32>", "!tile.ptr<f32>"], body)
    x = _data(np.float32, N)
    flags = np.zeros(N, np.bool_)
    out2d = np.zeros((R, N), np.float32)
    colsum = np.zeros(N, np.float32)
    run(m, [x, flags, out2d, colsum], [1])
    v = np.where(x > 0, 2 * x, 0).astype(np.float32)
    np.testing.assert_array_equal(flags, x > 0)
    assert flags.view(np.uint8).max() == 1  # bytes hold 0/1
    np.testing.assert_allclose(out2d, v[None, :] * np.arange(R, dtype=np.float32)[:, None])
    np.testing.assert_allclose(colsum, v * np.arange(R).sum() + 1, rtol=1e-6)


@pytest.mark.parametrize("t,R,C,n", [("f32", 32, 48, 40), ("f64", 32, 48, 40), ("f32", 3, 1024, 1000),
                                     ("f64", 2, 512, 300)])
def test_row_strip_mined_2d(t, R, C, n):
    """nbody-like 2-D code run row by row (rows longer than 256 lanes in 16-lane pieces): broadcasts of
    [1, C] and [R, 1], reductions along both axes, a 2-D value used after the loop (by a transpose) and a
    masked 2-D store."""

    def body(x, y, out, rs, cs, cmin, n):
        xi, yj = tile.arange(0, R), tile.arange(0, C)
        xv = tile.load(ptrs(x, xi))
        ym = lt(yj, tile.splat(n, [C]))
        yv = tile.load(ptrs(y, yj), ym)
        d = arith.subf(bcast(row(yv), [R, C]), bcast(col(xv), [R, C]))
        w = arith.mulf(mmath.exp(arith.negf(arith.mulf(d, d))), d)
        mask2 = bcast(row(ym), [R, C])
        off = arith.addi(bcast(col(arith.muli(xi, full(C, [R], "i32"))), [R, C]), bcast(row(yj), [R, C]))
        tile.store(tile.addptr(tile.splat(out, [R, C]), off), w, mask2)
        zero = full(0.0, [R, C], t)
        wm = arith.select(mask2, w, zero)
        tile.store(ptrs(rs, xi), tile.reduce(wm, 1, "sum"))
        tile.store(ptrs(cs, yj), tile.reduce(tile.trans(wm), 1, "max"), ym)
        tile.store(ptrs(cmin, yj), tile.reduce(wm, 0, "min"), ym)

    m = build("rows2d", [f"!tile.ptr<{t}>"] * 6 + ["i32"], body)
    np_t = FLOATS[t]
    x, y = _data(np_t, R), _data(np_t, C)
    out = np.full((R, C), 5, np_t)
    rs, cs, cmin = np.zeros(R, np_t), np.zeros(C, np_t), np.zeros(C, np_t)
    run(m, [x, y, out, rs, cs, cmin, n], [1])
    d = y[None, :n].astype(np.float64) - x[:, None]
    w = np.exp(-d * d) * d
    tol = 2e-6 if t == "f32" else 1e-12
    np.testing.assert_allclose(out[:, :n], w, rtol=tol, atol=tol)
    assert (out[:, n:] == 5).all()
    np.testing.assert_allclose(rs, w.sum(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cs[:n], w.max(axis=0), rtol=tol, atol=tol)
    np.testing.assert_allclose(cmin[:n], w.min(axis=0), rtol=tol, atol=tol)


def test_big_tiles_carried_by_a_loop():
    """Value tiles of 512+ elements cross scf.for iterations in a stack buffer: read whole (a reshape) and
    chunk by chunk (strip-mined ops) at every iteration, written back at its end."""
    R, C, steps = 2, 512, 3
    from mlir import ir

    def body(x, out, flat_out):
        offs = arith.addi(bcast(col(arith.muli(tile.arange(0, R), full(C, [R], "i32"))), [R, C]),
                          bcast(row(tile.arange(0, C)), [R, C]))
        loop = scf.ForOp(const(0, "i32"), const(steps, "i32"), const(1, "i32"),
                         [full(1.0, [R, C], "f32"), full(0.0, [R * C], "f32")])
        with ir.InsertionPoint(loop.body):
            i = loop.induction_variable
            acc, flat = loop.inner_iter_args
            v = tile.load(tile.addptr(tile.splat(x, [R, C]), arith.addi(offs, tile.splat(arith.muli(
                i, const(R * C, "i32")), [R, C]))))
            whole = tile.reshape(tile.reshape(acc, [R * C]), [R, C])  # not strip-mined: reads acc whole
            new = arith.addf(arith.mulf(whole, full(0.5, [R, C], "f32")), v)
            scf.YieldOp([new, arith.addf(flat, tile.reshape(new, [R * C]))])
        tile.store(tile.addptr(tile.splat(out, [R, C]), offs), loop.results[0])
        tile.store(ptrs(flat_out, tile.arange(0, R * C)), loop.results[1])

    m = build("carried", ["!tile.ptr<f32>"] * 3, body)
    x = _data(np.float32, steps * R * C).reshape(steps, R, C)
    out, flat_out = np.zeros((R, C), np.float32), np.zeros(R * C, np.float32)
    run(m, [x, out, flat_out], [1])
    acc, total = np.ones((R, C)), np.zeros((R, C))
    for i in range(steps):
        acc = acc * 0.5 + x[i]
        total += acc
    np.testing.assert_allclose(out, acc, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(flat_out, total.ravel(), rtol=1e-6, atol=1e-6)


# ------------------------------------------------- random elementwise programs
_BIN = {"add": (arith.addf, np.add), "sub": (arith.subf, np.subtract), "mul": (arith.mulf, np.multiply),
        "max": (arith.maximumf, np.maximum), "min": (arith.minimumf, np.minimum)}
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(shape=st.sampled_from([(256,), (48,), (8, 64), (16, 24), (2, 512)]),
       steps=st.lists(st.tuples(st.sampled_from(["add", "sub", "mul", "max", "min", "abs", "tanh", "where", "sum"]),
                                st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=8),
       n_frac=st.floats(0.3, 1.0))
def test_random_elementwise_programs(shape, steps, n_frac):
    """Random chains of elementwise ops (with a masked tail and reductions) on 1-D and 2-D tiles,
    strip-mined or not, against numpy."""
    total = int(np.prod(shape))
    n = max(1, int(total * n_frac))

    def body(x, y, out, red, n_):
        offs = tile.arange(0, total)
        mask = lt(offs, tile.splat(n_, [total]))
        vals = [tile.load(ptrs(x, offs), mask), tile.load(ptrs(y, offs), mask)]
        if len(shape) == 2:
            vals = [tile.reshape(v, shape) for v in vals]
        sums = []
        for name, i, j in steps:
            a, b = vals[i % len(vals)], vals[j % len(vals)]
            if name in _BIN:
                vals.append(_BIN[name][0](a, b))
            elif name == "abs":
                vals.append(mmath.absf(a))
            elif name == "tanh":
                vals.append(mmath.tanh(a))
            elif name == "where":
                vals.append(arith.select(arith.cmpf(arith.CmpFPredicate.OLT, a, b), a, arith.negf(b)))
            else:
                sums.append(tile.reduce(a, len(shape) - 1, "sum"))
        res = vals[-1] if len(shape) == 1 else tile.reshape(vals[-1], [total])
        tile.store(ptrs(out, offs), res, mask)
        if sums and len(shape) == 1:
            tile.store(red, sums[0])
        elif sums:
            tile.store(ptrs(red, tile.arange(0, shape[0])), sums[0])

    m = build("rand", ["!tile.ptr<f32>"] * 4 + ["i32"], body)
    x, y = _data(np.float32, total), _data(np.float32, total)
    out = np.full(total, 9, np.float32)
    red = np.zeros(shape[0] if len(shape) == 2 else 1, np.float32)
    run(m, [x, y, out, red, n], [1])
    xm, ym = np.where(np.arange(total) < n, x, 0).astype(np.float64), np.where(np.arange(total) < n, y, 0)
    vals = [xm.reshape(shape), ym.astype(np.float64).reshape(shape)]
    sums = []
    for name, i, j in steps:
        a, b = vals[i % len(vals)], vals[j % len(vals)]
        if name in _BIN:
            vals.append(_BIN[name][1](a, b))
        elif name == "abs":
            vals.append(np.abs(a))
        elif name == "tanh":
            vals.append(np.tanh(a))
        elif name == "where":
            vals.append(np.where(a < b, a, -b))
        else:
            sums.append(a.sum(axis=-1))
    ref = vals[-1].reshape(-1)
    np.testing.assert_allclose(out[:n], ref[:n], rtol=1e-5, atol=1e-5)
    assert (out[n:] == 9).all()
    if sums:
        np.testing.assert_allclose(red, np.atleast_1d(sums[0]), rtol=1e-4, atol=1e-4)


def test_compile_api_stages_and_errors():
    """compile_tile_module keeps every stage on request, leaves its input alone, and names the op it
    cannot lower."""
    from alloy.passes.errors import LoweringError
    from alloy.targets.cpu import STAGES, compile_tile_module

    def body(x, y):
        offs = tile.arange(0, 64)
        tile.store(ptrs(y, offs), mmath.exp(tile.load(ptrs(x, offs))))

    m = build("stages", ["!tile.ptr<f32>"] * 2, body)
    before = str(m)
    art = compile_tile_module(m, keep_stages=True)
    assert str(m) == before
    assert set(art.stages) == set(STAGES) and art.entry == "stages"
    assert "tile.load" in art.stages["tile-ir"] and "llvm.func" in art.stages["llvm-dialect"]
    assert "define void @stages(" in art.stages["llvm"] and "stages:" in art.stages["asm"]
    assert art.shared_object[:4] == (b"\x7fELF" if sys.platform.startswith("linux") else art.shared_object[:4])

    def bad(x, y):  # an i1 atomic add has no lowering
        tile.atomic_rmw("add", tile.addptr(x, const(0, "i32")), const(1, "i1"))

    with pytest.raises(LoweringError, match="tile.atomic_rmw.*atomic add on i1"):
        compile_tile_module(build("bad", ["!tile.ptr<i1>", "!tile.ptr<f32>"], bad))
