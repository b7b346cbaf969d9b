"""The thread-level (SIMT) language on the CUDA target: every case of test/simt_kernels.py (threads,
shared and local arrays, barriers, shuffles, SIMD-group reductions, tensor-core SIMD-group matrices)
against numpy. Without a driver each case compiles its PTX (filling the cache) and skips."""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.cuda

_path = pathlib.Path(__file__).resolve().parents[1] / "simt_kernels.py"
_spec = importlib.util.spec_from_file_location("alloy_simt_kernels_cuda", _path)
simt = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = simt
_spec.loader.exec_module(simt)


@pytest.mark.parametrize("name", list(simt.CASES))
def test_simt_case_on_cuda(run_cuda, name):
    case = simt.CASES[name](np.random.default_rng(7))
    out = run_cuda(case.kernel, case.grid, *case.args, **case.kwargs)
    case.check(out if isinstance(out, tuple) else (out,), 1.0)
