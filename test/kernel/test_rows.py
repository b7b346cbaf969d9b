"""Reductions along either axis of 2-D tiles and the multi-row softmax / layernorm kernels of
benchmarks/cuda_kernels.py, on the CPU target against numpy.

The shapes are chosen for the CUDA lowering's cases (passes/simt/reduce.py): rows spread over all
threads and several warps, rows shared by a few lanes, replicated small tiles, f16 rows of two
chunk rounds, axis 0 held in registers, and the general path. test/cuda/test_cuda_rows.py runs
the same kernels on the GPU.
"""
import importlib.util
import pathlib

import numpy as np
import pytest

import alloy as al

rng = np.random.default_rng(7)
_spec = importlib.util.spec_from_file_location(
    "alloy_bench_cuda_kernels", pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "cuda_kernels.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

# (rows R, columns C, block BR x BC, axis): each block is one program's tile
SHAPES = [
    (4, 1000, 4, 1024, 1),   # a row over all 256 threads: 8 warps' partials per row
    (13, 250, 16, 256, 1),   # a row over 64 threads (2 warps), 4 row groups
    (50, 30, 64, 32, 1),     # a row over 8 lanes
    (7, 6, 8, 8, 1),         # a tile smaller than the block: replicated threads
    (2, 500, 2, 512, 0),     # axis 0 in registers
    (13, 50, 16, 64, 0),     # axis 0 through workgroup memory
]
KINDS = ["sum", "max", "min", "argmax", "argmin"]
NP = {"sum": np.sum, "max": np.max, "min": np.min, "argmax": np.argmax, "argmin": np.argmin}


_core_spec = importlib.util.spec_from_file_location(
    "alloy_rows_core_kernels", pathlib.Path(__file__).with_name("test_core.py"))
core = importlib.util.module_from_spec(_core_spec)
_core_spec.loader.exec_module(core)
reduce_tile = core.reduce_rows  # KIND-reduce a ragged tile along AXIS, masked elements FILL


@al.kernel
def center_rows(x, w, out: al.output, R, C, BR: al.constexpr, BC: al.constexpr):
    """x - rowmax(x) + w (broadcasts of a row reduction and of a loaded row), minus the column sums."""
    r = al.arange(0, BR)
    c = al.arange(0, BC)
    m = (r[:, None] < R) & (c[None, :] < C)
    v = al.load(x + r[:, None] * C + c[None, :], mask=m, other=0.0)
    y = v - al.max(v, axis=1)[:, None] + al.load(w + c, mask=c < C, other=0.0)[None, :]
    al.store(out + r[:, None] * C + c[None, :], y - al.sum(v, axis=0)[None, :], mask=m)


@al.kernel
def row_max_loop(x, out: al.output, R, C, BR: al.constexpr, BC: al.constexpr):
    """Sum over column blocks of each block's row maxima: a row reduction inside a loop."""
    r = al.arange(0, BR)
    acc = al.zeros((BR,), dtype=al.float32)
    for start in range(0, C, BC):
        c = start + al.arange(0, BC)
        v = al.load(x + r[:, None] * C + c[None, :], mask=(r[:, None] < R) & (c[None, :] < C), other=-1e30)
        acc += al.max(v, axis=1)
    al.store(out + r, acc, mask=r < R)


def fill(kind: str, dtype: str):
    if kind == "sum":
        return 0
    big = 1e30 if dtype.startswith("float") else 1 << 30
    return -big if kind in ("max", "argmax") else big


def reduce_case(launch, R, C, BR, BC, axis, kind, dtype):
    """Run reduce_tile through `launch(kernel, grid, *args, **kw)`; (result, numpy reference)."""
    if dtype.startswith("int"):
        x = rng.integers(-3, 4, (R, C)).astype(dtype)  # many ties: argmax/argmin give the first
    else:
        x = rng.standard_normal((R, C)).astype(dtype)
    out = np.asarray(launch(reduce_tile, 1, x, R, C, KIND=kind, AXIS=axis, FILL=fill(kind, dtype), BR=BR, BC=BC))
    ref = NP[kind](x.astype(np.float64) if kind == "sum" else x, axis=axis)
    return out, ref


def check_reduce(out, ref, kind, dtype):
    if kind in ("argmax", "argmin") or dtype == "int32":
        np.testing.assert_array_equal(out, ref)
    else:
        tol = 2e-2 if dtype == "float16" else 1e-5
        np.testing.assert_allclose(out.astype(np.float64), ref, rtol=tol, atol=tol)


def _cpu(kernel, grid, *args, **kw):
    return kernel[grid](*args, **kw)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("R,C,BR,BC,axis", SHAPES)
def test_reduce_2d(R, C, BR, BC, axis, kind):
    out, ref = reduce_case(_cpu, R, C, BR, BC, axis, kind, "float32")
    check_reduce(out, ref, kind, "float32")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("R,C,BR,BC,axis", [(13, 250, 16, 256, 1), (2, 500, 2, 512, 0)])
def test_reduce_2d_int_ties(R, C, BR, BC, axis, kind):
    out, ref = reduce_case(_cpu, R, C, BR, BC, axis, kind, "int32")
    check_reduce(out, ref, kind, "int32")


@pytest.mark.parametrize("kind", ["sum", "max", "argmax"])
def test_reduce_2d_f16_rows(kind):
    out, ref = reduce_case(_cpu, 2, 4000, 2, 4096, 1, kind, "float16")
    check_reduce(out, ref, kind, "float16")


def argmax_nan_case(launch):
    x = rng.standard_normal((13, 250)).astype(np.float32)
    x[3, [17, 200]] = np.nan
    x[5, [240, 9]] = np.nan
    x[7, 100] = x[7, 20] = 50.0
    out = np.asarray(launch(reduce_tile, 1, x, 13, 250, KIND="argmax", AXIS=1, FILL=-1e30, BR=16, BC=256))
    return out, np.argmax(x, axis=1)


def test_argmax_first_nan_and_first_tie():
    out, ref = argmax_nan_case(_cpu)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("kind", ["argmax", "argmin"])
def test_arg_reduction_down_columns_first_nan_and_tie(kind):
    """Along axis 0 (one elementwise pass over the rows): the first NaN wins, ties keep the first row."""
    x = rng.standard_normal((16, 256)).astype(np.float32)
    x[[5, 9], 3] = np.nan
    x[[0, 2], 7] = x[[4, 11], 8] = np.float32(50.0 if kind == "argmax" else -50.0)
    x[15, 9] = np.nan
    out = np.asarray(reduce_tile[1](x, 16, 256, KIND=kind, AXIS=0, FILL=fill(kind, "float32"), BR=16, BC=256))
    np.testing.assert_array_equal(out, NP[kind](x, axis=0))


def center_case(launch, R, C, BR, BC):
    x = rng.standard_normal((R, C)).astype(np.float32)
    w = rng.standard_normal(C).astype(np.float32)
    out = np.asarray(launch(center_rows, 1, x, w, R, C, BR=BR, BC=BC, out=np.zeros((R, C), np.float32)))
    return out, x - x.max(1, keepdims=True) + w - x.sum(0)


@pytest.mark.parametrize("R,C,BR,BC", [(4, 1000, 4, 1024), (3, 30, 4, 32)])
def test_broadcast_of_reductions(R, C, BR, BC):
    out, ref = center_case(_cpu, R, C, BR, BC)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def loop_case(launch):
    x = rng.standard_normal((6, 1000)).astype(np.float32)
    out = np.asarray(launch(row_max_loop, 1, x, 6, 1000, BR=8, BC=256))
    ref = sum(x[:, s:s + 256].max(1) for s in range(0, 1000, 256))
    return out, ref


def test_row_reduction_in_a_loop():
    out, ref = loop_case(_cpu)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


def rows_case(launch, name, R, C, block, rows, dtype):
    """Run the benchmark's softmax_rows / layernorm_rows / layernorm_loop (`name`); (result, float64
    reference, tolerance)."""
    x = rng.standard_normal((R, C)).astype(dtype)
    out_t = al.float16 if dtype == "float16" else al.float32
    res = np.zeros((R, C), dtype)
    xf = x.astype(np.float64)
    if name == "softmax_rows":
        got = launch(bench.softmax_rows, al.cdiv(R, rows), x, out=res, OUT=out_t, BLOCK=block, ROWS=rows)
        e = np.exp(xf - xf.max(1, keepdims=True))
        ref = e / e.sum(1, keepdims=True)
    else:
        w = rng.standard_normal(C).astype(dtype)
        b = rng.standard_normal(C).astype(dtype)
        got = launch(getattr(bench, name), al.cdiv(R, rows), x, w, b, 1e-5, out=res, OUT=out_t, BLOCK=block,
                     ROWS=rows)
        mu = xf.mean(1, keepdims=True)
        ref = (xf - mu) / np.sqrt(((xf - mu) ** 2).mean(1, keepdims=True) + 1e-5) * w + b
    return np.asarray(got).astype(np.float64), ref, (1e-2 if dtype == "float16" else 1e-5)


ROWS_CASES = [(10, 1000, 1024, 4, "float32"), (9, 4096, 4096, 2, "float32"), (9, 4096, 4096, 4, "float16"),
              (7, 300, 512, 2, "float16"), (5, 64, 64, 8, "float16")]


@pytest.mark.parametrize("name", ["softmax_rows", "layernorm_rows", "layernorm_loop"])
@pytest.mark.parametrize("R,C,block,rows,dtype", ROWS_CASES)
def test_rows_kernels(name, R, C, block, rows, dtype):
    got, ref, tol = rows_case(_cpu, name, R, C, block, rows, dtype)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
