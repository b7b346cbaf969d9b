"""Op-level numerical checks of the CUDA target against numpy (run on a GPU; compile-only elsewhere)."""
import importlib.util
import pathlib

import numpy as np
import pytest

import alloy as al

pytestmark = pytest.mark.cuda
rng = np.random.default_rng(1)


def _load(path: str, name: str):
    """A module of the repository by path (the benchmarks and examples are not packages)."""
    spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).resolve().parents[2] / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_bench = _load("benchmarks/cuda_kernels.py", "alloy_bench_cuda_kernels")


@al.kernel
def vadd(x, y, out: al.output, N, BLOCK: al.constexpr = 1024):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) + al.load(y + offs, mask=m), mask=m)


@pytest.mark.parametrize("dtype", ["float32", "float16", "int32"])
@pytest.mark.parametrize("n", [1, 1000, 4097])
def test_vector_add(run_cuda, dtype, n):
    x = (rng.standard_normal(n) * 10).astype(dtype)
    y = (rng.standard_normal(n) * 10).astype(dtype)
    z = np.asarray(run_cuda(vadd, al.cdiv(n, 1024), x, y, n))
    assert z.shape == (n,) and z.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(z, x + y)


_core = _load("test/kernel/test_core.py", "alloy_cuda_ops_core_kernels")
unary, UNARY = _core.unary, _core.UNARY_REF  # the CPU suite's math kernel (BLOCK 128) and numpy references


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_unary(run_cuda, op, dtype):
    n = 1000
    x = (rng.standard_normal(n) * 2).astype(dtype)
    y = np.asarray(run_cuda(unary, al.cdiv(n, 128), x, n, OP=op))
    ref = UNARY[op](x.astype(np.float64))
    tol = 2e-3 if dtype == "float16" else 2e-6
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=tol * 5, atol=tol)


softmax = _load("examples/kernel/softmax.py", "alloy_example_softmax").softmax  # one row per program


@pytest.mark.parametrize("cols,block", [(1000, 1024), (37, 64), (4096, 4096)])
def test_softmax(run_cuda, cols, block):
    x = rng.standard_normal((33, cols)).astype(np.float32)
    y = np.asarray(run_cuda(softmax, 33, x, cols, BLOCK=block)).reshape(33, cols)
    ref = np.exp(x - x.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["sum", "max", "min", "argmax"])
@pytest.mark.parametrize("axis", [0, 1])
def test_reduce_2d(run_cuda, kind, axis):
    M, N = 16, 32
    x = rng.standard_normal((M, N)).astype(np.float32)
    y = np.asarray(run_cuda(_core.reduce_rows, 1, x, M, N, KIND=kind, BR=M, BC=N, AXIS=axis))
    ref = {"sum": np.sum, "max": np.max, "min": np.min, "argmax": np.argmax}[kind](x, axis=axis)
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


@al.kernel
def transpose(x, out: al.output, M, N, B: al.constexpr = 32):
    pm = al.program_id(0) * B + al.arange(0, B)
    pn = al.program_id(1) * B + al.arange(0, B)
    m = (pm[:, None] < M) & (pn[None, :] < N)
    v = al.load(x + pm[:, None] * N + pn[None, :], mask=m)
    al.store(out + pn[:, None] * M + pm[None, :], al.trans(v), mask=al.trans(m))


def test_transpose(run_cuda):
    M, N = 70, 45
    x = rng.standard_normal((M, N)).astype(np.float32)
    y = np.asarray(run_cuda(transpose, (al.cdiv(M, 32), al.cdiv(N, 32)), x, M, N, out=np.zeros((N, M), np.float32)))
    np.testing.assert_array_equal(y, x.T)


matmul = _bench.matmul  # the benchmarked tiled tile_dot GEMM (C = A @ B_T.T, f32 by default)


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_tile_dot(run_cuda, dtype):
    M, K, N = 200, 96, 130
    A = rng.standard_normal((M, K)).astype(dtype)
    B = rng.standard_normal((K, N)).astype(dtype)
    C = np.asarray(run_cuda(matmul, (al.cdiv(M, 64), al.cdiv(N, 64)), A, np.ascontiguousarray(B.T)))
    ref = A.astype(np.float32) @ B.astype(np.float32)
    np.testing.assert_allclose(C, ref, rtol=1e-3, atol=1e-3 if dtype == "float32" else 2e-2)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("blocks", [(64, 64, 64), (128, 128, 64), (128, 256, 64), (64, 128, 128)])
@pytest.mark.parametrize("mkn", [(200, 96, 130), (333, 200, 257), (128, 1024, 256)])
def test_tile_dot_pipelined(run_cuda, dtype, blocks, mkn):
    """The sm_90a wgmma + cp.async pipeline (passes/simt/hopper_wgmma.py): ragged edges, K not a multiple of the
    block, loops shorter than the pipeline, one and two warpgroups."""
    import ml_dtypes

    M, K, N = mkn
    bm, bn, bk = blocks
    npdt = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
    A = rng.standard_normal((M, K)).astype(npdt)
    B_T = rng.standard_normal((N, K)).astype(npdt)
    C = np.asarray(run_cuda(matmul, (al.cdiv(M, bm), al.cdiv(N, bn)), A, B_T, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk))
    ref = A.astype(np.float32) @ B_T.astype(np.float32).T
    np.testing.assert_allclose(C, ref, rtol=1e-3, atol=2e-2)


@al.kernel
def matmul_bias_steps(A, B_T, bias, C: al.output, steps: al.output, BLOCK_M: al.constexpr = 64,
                      BLOCK_N: al.constexpr = 64, BLOCK_K: al.constexpr = 64):
    """A pipelined K loop whose accumulator starts from loaded data (not zeros) and which carries
    another value (a step count) that is used after the loop."""
    M, K = A.shape
    N = B_T.shape[0]
    rm = al.program_id(0) * BLOCK_M + al.arange(0, BLOCK_M)
    rn = al.program_id(1) * BLOCK_N + al.arange(0, BLOCK_N)
    rk = al.arange(0, BLOCK_K)
    out_mask = (rm[:, None] < M) & (rn[None, :] < N)
    acc = al.load(bias + rm[:, None] * N + rn[None, :], mask=out_mask, other=0.0)
    a_ptrs = A + rm[:, None] * K + rk[None, :]
    b_ptrs = B_T + rn[:, None] * K + rk[None, :]
    n = 0
    for k in range(0, K, BLOCK_K):
        a = al.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] + k < K))
        b = al.load(b_ptrs, mask=(rn[:, None] < N) & (rk[None, :] + k < K))
        acc = al.tile_dot(a, b, acc, transpose_rhs=True)
        a_ptrs += BLOCK_K
        b_ptrs += BLOCK_K
        n += 1
    al.store(C + rm[:, None] * N + rn[None, :], acc, mask=out_mask)
    al.store(steps + al.program_id(0) * al.num_programs(1) + al.program_id(1), n)


@pytest.mark.parametrize("mkn", [(130, 200, 70), (64, 64, 64)])
def test_tile_dot_pipelined_bias_and_carried_value(run_cuda, mkn):
    M, K, N = mkn
    A = rng.standard_normal((M, K)).astype(np.float16)
    B_T = rng.standard_normal((N, K)).astype(np.float16)
    bias = rng.standard_normal((M, N)).astype(np.float32)
    grid = (al.cdiv(M, 64), al.cdiv(N, 64))
    steps = np.zeros(grid[0] * grid[1], np.int32)
    C = np.asarray(run_cuda(matmul_bias_steps, grid, A, B_T, bias, steps=steps)[0])  # (C, steps)
    ref = bias + A.astype(np.float32) @ B_T.astype(np.float32).T
    np.testing.assert_allclose(C, ref, rtol=1e-3, atol=2e-2)
    assert steps.tolist() == [al.cdiv(K, 64)] * len(steps)


@al.kernel
def histogram(x, bins, N, NB, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    v = al.load(x + offs, mask=m, other=0)
    al.atomic_add(bins + v % NB, 1, mask=m)


def test_atomic_histogram(run_cuda):
    n, nb = 5000, 17
    x = rng.integers(0, 1000, n).astype(np.int32)
    bins = np.zeros(nb, np.int32)
    run_cuda(histogram, al.cdiv(n, 256), x, bins, n, nb)
    np.testing.assert_array_equal(bins, np.bincount(x % nb, minlength=nb))


@al.kernel
def row_sum_loop(x, out: al.output, n_cols, BLOCK: al.constexpr = 128):
    row = al.program_id(0)
    acc = al.zeros((BLOCK,), dtype=al.float32)
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        acc += al.load(x + row * n_cols + cols, mask=cols < n_cols, other=0.0)
    al.store(out + row, al.sum(acc, axis=0))


def test_loop_carried_reduction(run_cuda):
    x = rng.standard_normal((9, 1000)).astype(np.float32)
    y = np.asarray(run_cuda(row_sum_loop, 9, x, 1000))
    np.testing.assert_allclose(y, x.sum(1), rtol=1e-5, atol=1e-4)
