"""Compile-only checks of the CUDA target (no GPU needed): the PTX is produced and has the
expected structure; when ptxas is on PATH it must also assemble for sm_90."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from alloy.compiler import tile_ir
from test_cuda_ops import matmul, softmax, unary, vadd  # noqa: E402


def _ptx(kernel, *args, **kwargs):
    from alloy.targets.cuda import compile_tile_module

    spec, _ = kernel.specialize(kernel.bind(args, kwargs))
    ctx, module, _ = tile_ir(kernel.source, spec)
    with ctx:
        art = compile_tile_module(module)
    ptxas = shutil.which("ptxas")
    if ptxas:
        proc = subprocess.run([ptxas, "-arch=sm_90", "-o", "/dev/null", "-"], input=art.ptx.encode(),
                              capture_output=True)
        assert proc.returncode == 0, proc.stderr.decode()
    return art


def test_vector_add_ptx():
    x = np.zeros(4, np.float32)
    art = _ptx(vadd, x, x, 4)
    # x, its length, y, its length, out, N: one PTX parameter per tile-kernel argument
    assert (art.entry, art.num_threads, art.params) == ("vadd", 128, ["ptr", "i32", "ptr", "i32", "ptr", "i32"])
    ptx = art.ptx
    assert re.search(r"^\.target sm_90", ptx, re.M)
    assert re.search(r"\.visible \.entry vadd\(", ptx)
    assert len(re.findall(r"ld\.global\.v4\.(b32|f32)", ptx)) == 4  # two 16-byte chunks per thread, x and y
    assert len(re.findall(r"st\.global\.v4\.(b32|f32)", ptx)) == 2
    assert "__nv_" not in ptx  # no libdevice calls


def test_softmax_ptx_reduces_with_shuffles_and_barriers():
    x = np.zeros((2, 2), np.float32)
    ptx = _ptx(softmax, x, 2, BLOCK=1024).ptx
    assert len(re.findall(r"shfl\.sync\.bfly\.b32", ptx)) == 10  # max and sum: 5 butterfly steps each
    assert re.search(r"bar\.sync", ptx)
    assert re.search(r"ex2\.approx", ptx)
    assert re.search(r"\.shared \.align \d+ \.b8 \w+\[\d+\]", ptx)


def test_math_has_no_libdevice_calls():
    x = np.zeros(4, np.float32)
    for op in ("erf", "tanh", "log", "sin"):
        assert "__nv_" not in _ptx(unary, x, 4, OP=op).ptx


def test_tile_dot_f16_uses_tensor_cores():
    a = np.zeros((2, 2), np.float16)
    art = _ptx(matmul, a, a)
    assert re.search(r"wmma\.mma\.sync\.aligned\.row\.row\.m16n16k16\.f32\.f32", art.ptx)
    assert re.search(r"wmma\.load\.a\.sync", art.ptx) and re.search(r"wmma\.store\.d\.sync", art.ptx)
    assert art.shared_bytes > 0


def test_unsupported_op_names_the_op():
    from alloy.passes.errors import LoweringError
    from alloy.targets.cuda import compile_tile_module

    x = np.zeros(4, np.float64)
    spec, _ = unary.specialize(unary.bind((x, 4), {"OP": "erf"}))
    ctx, module, _ = tile_ir(unary.source, spec)
    with ctx, pytest.raises(LoweringError, match="math.erf on f64"):
        compile_tile_module(module)


def test_too_much_workgroup_memory_is_a_clear_error():
    from alloy.passes.errors import LoweringError
    from alloy.targets.cuda import compile_tile_module

    a = np.zeros((2, 2), np.float16)
    spec, _ = matmul.specialize(matmul.bind((a, a), {"BLOCK_M": 128, "BLOCK_N": 128}))
    ctx, module, _ = tile_ir(matmul.source, spec)
    with ctx, pytest.raises(LoweringError, match="bytes of workgroup memory; the static limit is 49152"):
        compile_tile_module(module)
