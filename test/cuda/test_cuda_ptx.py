"""Compile-only checks of the CUDA target (no GPU needed): the PTX is produced and has the
expected structure; when ptxas is on PATH it must also assemble for sm_90."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from alloy.compiler import tile_ir
from test_cuda_ops import matmul, softmax, unary, vadd  # noqa: E402


def _ptx(kernel, *args, arch="sm_90", **kwargs):
    from alloy.targets.cuda import compile_tile_module

    spec, _ = kernel.specialize(kernel.bind(args, kwargs))
    ctx, module, _ = tile_ir(kernel.source, spec)
    with ctx:
        art = compile_tile_module(module, arch=arch)
    ptxas = shutil.which("ptxas")
    if ptxas:
        proc = subprocess.run([ptxas, f"-arch={arch}", "-o", "/dev/null", "-"], input=art.ptx.encode(),
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
        compile_tile_module(module, arch="sm_90")  # WMMA stages operands in static shared memory


def test_tile_dot_f16_on_hopper_is_a_wgmma_pipeline():
    a = np.zeros((2, 2), np.float16)
    art = _ptx(matmul, a, a, arch="sm_90a", BLOCK_M=128, BLOCK_N=256, BLOCK_K=64)
    ptx = art.ptx
    assert art.num_threads == 256  # two warpgroups, 64 accumulator rows each
    assert art.dynamic_shared_bytes == 1024 + 4 * (128 + 256) * 64 * 2  # four 48 KiB stages, 1024-byte aligned
    assert re.search(r"\.extern \.shared \.align 1024 \.b8 alloy_dsmem\[\]", ptx)
    assert len(re.findall(r"wgmma\.mma_async\.sync\.aligned\.m64n256k16\.f32\.f16\.f16", ptx)) == 4
    assert re.search(r"wgmma\.wait_group\.sync\.aligned\s+1;", ptx)
    assert re.search(r"cp\.async\.cg\.shared\.global", ptx)
    assert re.search(r"fence\.proxy\.async\.shared::cta", ptx)
    assert "wmma.mma.sync" not in ptx


def test_tile_dot_with_a_small_k_block_keeps_wmma_on_hopper():
    a = np.zeros((2, 2), np.float16)
    ptx = _ptx(matmul, a, a, arch="sm_90a", BLOCK_K=16).ptx  # 32-wide K blocks are the pipeline's minimum
    assert re.search(r"wmma\.mma\.sync\.aligned\.row\.row\.m16n16k16\.f32\.f32", ptx)
    assert "wgmma" not in ptx


def test_cuda_arch_is_configurable():
    import alloy as al
    import alloy.config

    a = np.zeros((2, 2), np.float16)
    old = alloy.config.get().cuda_arch
    alloy.config.set(cuda_arch="sm_80")
    try:
        ptx = al.inspect(matmul, a, a, level="ptx", print_ir=False, BLOCK_K=64)
    finally:
        alloy.config.set(cuda_arch=old)
    assert re.search(r"^\.target sm_80", ptx, re.M) and "wmma.mma.sync" in ptx and "wgmma" not in ptx
    with pytest.raises(ValueError, match="cuda_arch"):
        alloy.config.set(cuda_arch="sm_75")
