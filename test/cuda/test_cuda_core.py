"""The CPU target's op-level kernels (test/kernel/test_core.py) on the CUDA target, against numpy."""
import importlib.util
import pathlib

import ml_dtypes
import numpy as np
import pytest

import alloy as al

pytestmark = pytest.mark.cuda
_spec = importlib.util.spec_from_file_location(
    "alloy_cuda_core_kernels", pathlib.Path(__file__).resolve().parents[1] / "kernel" / "test_core.py")
core = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(core)


@pytest.mark.parametrize("op", core.INT_OPS)
@pytest.mark.parametrize("dtype", ["int32", "int8", "int64", "uint32"])
def test_binary_int(run_cuda, op, dtype):
    n = 300
    a, b = core._rand(n, dtype), core._rand(n, dtype)
    if op in ("floordiv", "mod"):
        b[b == 0] = 3
    with np.errstate(over="ignore"):
        ref = core._NP[op](a, b).astype(dtype)
    np.testing.assert_array_equal(np.asarray(run_cuda(core.binary, al.cdiv(n, 64), a, b, n, OP=op)), ref)


@pytest.mark.parametrize("src,dst", core.SATURATING_CASTS)
def test_float_to_int_saturates(run_cuda, src, dst):
    x, ref = core.saturating_cast_case(src, dst)
    assert np.asarray(run_cuda(core.cast_kernel, 1, x, len(x), TO=getattr(al, dst))).tolist() == ref


@pytest.mark.parametrize("op", core.FLOAT_OPS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_binary_float(run_cuda, op, dtype):
    n = 300
    a, b = core._rand(n, dtype), core._rand(n, dtype)
    b[np.abs(b) < 0.1] = 0.5
    ref = core._NP[op](a.astype(np.float64), b.astype(np.float64))
    z = np.asarray(run_cuda(core.binary, al.cdiv(n, 64), a, b, n, OP=op))
    tol = 3e-3 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(z.astype(np.float64), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("src,dst", [("float32", "float16"), ("float16", "float32"), ("float32", "int32"),
                                     ("int32", "float32"), ("int8", "int32"), ("uint8", "int32"),
                                     ("int32", "int8"), ("float32", "bfloat16"), ("bfloat16", "float32"),
                                     ("int64", "float64"), ("float32", "bool")])
def test_cast(run_cuda, src, dst):
    n = 200
    x = core._rand(n, "float32") * 10 if src == "bfloat16" else core._rand(n, src)
    if src == "bfloat16":
        x = x.astype(ml_dtypes.bfloat16)
    to = getattr(al, dst if dst != "bool" else "bool_")
    y = np.asarray(run_cuda(core.cast_kernel, al.cdiv(n, 64), x, n, TO=to))
    ref = x.astype(ml_dtypes.bfloat16 if dst == "bfloat16" else dst)
    if dst in ("int32", "int8") and src.startswith("float"):
        ref = np.trunc(x.astype(np.float64)).astype(dst)
    np.testing.assert_array_equal(y.astype(np.float64), ref.astype(np.float64))


@pytest.mark.parametrize("kind", ["sum", "max", "min", "argmax", "argmin"])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_reduce(run_cuda, kind, axis, dtype):
    R, C = 13, 37
    x = core._rand(R * C, dtype).reshape(R, C)
    out = np.asarray(run_cuda(core.reduce_rows, 1, x, R, C, KIND=kind, BR=16, BC=64, AXIS=axis))
    ref = {"sum": np.sum, "max": np.max, "min": np.min, "argmax": np.argmax, "argmin": np.argmin}[kind](x, axis=axis)
    if kind == "sum" and dtype == "float32":
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
    else:
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("M,N,K,BM,BN,BK", [(33, 47, 29, 16, 16, 8), (64, 64, 64, 32, 32, 16),
                                            (100, 20, 70, 64, 32, 32)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tile_dot(run_cuda, M, N, K, BM, BN, BK, dtype):
    A = core._rand(M * K, dtype).reshape(M, K)
    B = core._rand(K * N, dtype).reshape(K, N)
    C = np.asarray(run_cuda(core.dot_kernel, (al.cdiv(M, BM), al.cdiv(N, BN)), A, B, M, N, K, BM=BM, BN=BN, BK=BK))
    ref = A.astype(np.float64) @ B.astype(np.float64)
    np.testing.assert_allclose(C, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind", ["add", "max", "min"])
@pytest.mark.parametrize("dtype", ["int32", "float32"])
def test_atomics(run_cuda, kind, dtype):
    n, nb = 5000, 7
    x = core._rand(n, dtype)
    init = {"add": 0, "max": -1000, "min": 1000}[kind]
    out = np.full(nb, init, dtype)
    run_cuda(core.atomic_kernel, al.cdiv(n, 64), x, out, n, KIND=kind, NB=nb)
    ref = np.full(nb, init, np.float64)
    {"add": np.add, "max": np.maximum, "min": np.minimum}[kind].at(ref, np.arange(n) % nb, x.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=1e-4)


def test_atomic_cas_and_xchg(run_cuda):
    lock, counter, out = np.zeros(1, np.int32), np.zeros(1, np.int32), np.zeros(500, np.int32)
    run_cuda(core.cas_kernel, 500, lock, counter, out)
    assert counter[0] == 500 and lock[0] == 0
    np.testing.assert_array_equal(out, np.arange(1, 501))


@pytest.mark.parametrize("R,C", [(1, 1), (17, 33), (64, 48)])
@pytest.mark.parametrize("dtype", ["float32", "int8", "float16"])
def test_transpose_ragged(run_cuda, R, C, dtype):
    x = core._rand(R * C, dtype).reshape(R, C)
    y = np.asarray(run_cuda(core.transpose, (al.cdiv(R, 16), al.cdiv(C, 16)), x, R, C)).reshape(C, R)
    np.testing.assert_array_equal(y, x.T)


@pytest.mark.parametrize("mode", ["loop", "while", "count_down", "func", "nested", "branches"])
def test_control_flow(run_cuda, mode):
    n = 50
    x = core._rand(n, "float32")
    y = np.asarray(run_cuda(core.control, n, x, n, MODE=mode))
    i = np.arange(n)
    ref = {"loop": x * sum(j for j in (1, 2, 4, 5, 7)), "while": x * 5,
           "count_down": np.full(n, 10 + 8 + 6 + 4 + 2, np.float32), "func": np.clip(x, -1, 1),
           "nested": x * (0 + 2 + 3 + 4),
           "branches": np.where(i % 2 == 0, x, np.where(i % 3 == 0, -x, x * 10))}[mode]
    np.testing.assert_allclose(y, ref, rtol=1e-6)


def test_early_return(run_cuda):
    x = core._rand(10, "float32")
    y = np.zeros(12, np.float32)
    run_cuda(core.early_exit, 12, x, y, 10)
    np.testing.assert_allclose(y[:10], x * 2)
    assert (y[10:] == 0).all()
