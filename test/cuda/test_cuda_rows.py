"""test/kernel/test_rows.py's kernels on the CUDA target: reductions along either axis of 2-D
tiles (row butterflies, per-warp partials, register-only axis 0, the general path) and the
benchmark's multi-row softmax / layernorm, against numpy; compile-only without a GPU."""
import importlib.util
import pathlib

import numpy as np
import pytest

pytestmark = pytest.mark.cuda
_spec = importlib.util.spec_from_file_location(
    "alloy_cuda_rows_kernels", pathlib.Path(__file__).resolve().parents[1] / "kernel" / "test_rows.py")
rows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rows)


@pytest.mark.parametrize("kind", rows.KINDS)
@pytest.mark.parametrize("R,C,BR,BC,axis", rows.SHAPES)
def test_reduce_2d(run_cuda, R, C, BR, BC, axis, kind):
    out, ref = rows.reduce_case(run_cuda, R, C, BR, BC, axis, kind, "float32")
    rows.check_reduce(out, ref, kind, "float32")


@pytest.mark.parametrize("kind", rows.KINDS)
@pytest.mark.parametrize("R,C,BR,BC,axis", [(13, 250, 16, 256, 1), (2, 500, 2, 512, 0), (4, 1000, 4, 1024, 0)])
def test_reduce_2d_int_ties(run_cuda, R, C, BR, BC, axis, kind):
    out, ref = rows.reduce_case(run_cuda, R, C, BR, BC, axis, kind, "int32")
    rows.check_reduce(out, ref, kind, "int32")


@pytest.mark.parametrize("kind", ["sum", "max", "argmax"])
def test_reduce_2d_f16_rows(run_cuda, kind):
    out, ref = rows.reduce_case(run_cuda, 2, 4000, 2, 4096, 1, kind, "float16")
    rows.check_reduce(out, ref, kind, "float16")


def test_argmax_first_nan_and_first_tie(run_cuda):
    out, ref = rows.argmax_nan_case(run_cuda)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("R,C,BR,BC", [(4, 1000, 4, 1024), (3, 30, 4, 32)])
def test_broadcast_of_reductions(run_cuda, R, C, BR, BC):
    out, ref = rows.center_case(run_cuda, R, C, BR, BC)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)


def test_row_reduction_in_a_loop(run_cuda):
    out, ref = rows.loop_case(run_cuda)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["softmax_rows", "layernorm_rows", "layernorm_loop"])
@pytest.mark.parametrize("R,C,block,rows_per,dtype", rows.ROWS_CASES + [(33, 4096, 4096, 1, "float16")])
def test_rows_kernels(run_cuda, name, R, C, block, rows_per, dtype):
    got, ref, tol = rows.rows_case(run_cuda, name, R, C, block, rows_per, dtype)
    np.testing.assert_allclose(got, ref, rtol=tol, atol=tol)
