"""The whole Metal pipeline (tile IR -> SIMT for the METAL SimtTarget -> MSL) on tile-IR inputs and
on the spec's matmul: math maps to Metal's functions, tile_dot to 8x8 simdgroup matrices. Each MSL is
also checked against the Metal-stdlib shim. Nothing here runs on Metal: see docs/metal.md."""
import importlib.util
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent
INPUTS = sorted(p.name for p in (HERE / "tile").glob("*.mlir"))


def _msl(text: str) -> str:
    from mlir import ir

    from alloy.dialects import tile
    from alloy.targets.metal import compile_tile_module

    ctx = tile.new_context()
    module = ir.Module.parse(text, ctx)
    with ctx:
        return compile_tile_module(module).msl


def test_inputs_present():
    assert {"math.mlir", "dot_loop.mlir"} <= set(INPUTS)


@pytest.mark.parametrize("name", INPUTS)
def test_filecheck_and_shim(name):
    from alloy.targets.metal import check_msl

    path = HERE / "tile" / name
    msl = _msl(path.read_text())
    proc = subprocess.run([sys.executable, "-m", "filecheck", str(path)], input=msl, capture_output=True, text=True)
    assert proc.returncode == 0, f"FileCheck failed for {name}:\n{proc.stdout}{proc.stderr}\n--- MSL ---\n{msl}"
    check_msl(msl, name=name.replace(".mlir", ".metal"))


def _matmul():
    path = HERE.parents[1] / "examples" / "kernel" / "matmul.py"
    spec = importlib.util.spec_from_file_location("alloy_metal_matmul_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.matmul


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
def test_matmul_example_uses_simdgroup_mma(dtype):
    """The spec's matmul (BLOCK 64/64/16, 128 threads = 4 SIMD-groups): each SIMD-group multiplies its
    16 of the 64 8x8 output fragments over 2 K-steps per iteration (32 multiply-accumulates), on
    float fragments also for f16 inputs (widened while staged); the only loop is the K loop."""
    import alloy as al
    from alloy.targets.metal import check_msl

    a = np.zeros((128, 64), dtype)
    b_t = np.zeros((128, 64), dtype)
    msl = al.inspect(_matmul(), a, b_t, level="msl")
    assert msl.count("simdgroup_multiply_accumulate(") == 32
    assert msl.count("for (") == 1
    assert msl.count("simdgroup_float8x8 r") == 16  # loop-carried accumulators
    assert "simdgroup_half8x8" not in msl
    assert msl.count(", ulong2(0, 0), true);") == 32  # b = B_T^T read transposed
    if dtype == np.float16:
        assert "device half* arg0 [[buffer(0)]]" in msl
        assert re.search(r"float v\d+ = float\(r\d+\);", msl)  # half -> float while staging
    check_msl(msl, name=f"matmul_{np.dtype(dtype).name}.metal")


F64_EXP = """
func.func @exp64(%x: !tile.ptr<f64>) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 128 : i64} : () -> tensor<128xi32>
  %p = "tile.splat"(%x) : (!tile.ptr<f64>) -> tensor<128x!tile.ptr<f64>>
  %pa = "tile.addptr"(%p, %r) : (tensor<128x!tile.ptr<f64>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f64>>
  %v = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<128x!tile.ptr<f64>>) -> tensor<128xf64>
  %e = math.exp %v : tensor<128xf64>
  "tile.store"(%pa, %e) : (tensor<128x!tile.ptr<f64>>, tensor<128xf64>) -> ()
  return
}
"""


def test_f64_math_is_a_lowering_error():
    from alloy.passes.errors import LoweringError

    with pytest.raises(LoweringError, match=r"math\.exp on f64 is not supported by the Metal target \(Metal has no"):
        _msl(F64_EXP)
