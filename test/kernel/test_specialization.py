"""Kernels compile once per specialisation; shapes and scalar values never recompile; the disk cache works."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import alloy as al


@al.kernel
def scale(x, out: al.output, N, factor, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) * factor, mask=m)


@pytest.fixture
def count_compiles(cpu_compiles):
    scale._compiled.clear()
    yield cpu_compiles
    scale._compiled.clear()


def test_new_shape_and_scalar_do_not_recompile(count_compiles):
    for n, f in [(100, 2.0), (1000, 3.0), (77, -1.5)]:
        x = np.random.rand(n).astype(np.float32)
        np.testing.assert_allclose(np.asarray(scale[al.cdiv(n, 256)](x, n, f)), x * f, rtol=1e-6)
    assert len(count_compiles) == 1


def test_new_dtype_or_constexpr_recompiles(count_compiles):
    x = np.random.rand(64).astype(np.float32)
    scale[1](x, 64, 2.0)
    scale[1](x.astype(np.float16), 64, 2.0)
    scale[1](x, 64, 2.0, BLOCK=64)
    scale[1](x, 64, 2.0, BLOCK=64)
    assert len(count_compiles) == 3


def test_disk_cache_survives_process_and_skips_mlir(tmp_path):
    code = textwrap.dedent(f"""
        import sys, time, numpy as np
        import alloy as al
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_specialization import scale
        x = np.arange(10, dtype=np.float32)
        t = time.perf_counter()
        y = scale[1](x, 10, 2.0)
        print("mlir" in sys.modules, np.asarray(y).tolist() == (x * 2).tolist())
    """)
    env = dict(os.environ, ALLOY_CACHE_DIR=str(tmp_path))
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["True", "True"]  # compiled: MLIR was needed
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["False", "True"]  # loaded from disk without MLIR


def test_grid_forms():
    x = np.random.rand(1000).astype(np.float32)
    a = scale[4](x, 1000, 1.0)
    b = scale[(4,)](x, 1000, 1.0)
    c = scale[lambda meta: (al.cdiv(meta["N"], meta["BLOCK"]),)](x, 1000, 1.0)
    for r in (a, b, c):
        np.testing.assert_array_equal(np.asarray(r), x)


def test_bad_grid():
    x = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="grid"):
        scale[(1, 1, 1, 1)](x, 4, 1.0)
    with pytest.raises(ValueError, match="grid"):
        scale[-1](x, 4, 1.0)


def test_inspect_levels():
    x = np.zeros(4, np.float32)
    tir = al.inspect(scale, x, 4, 1.0, level="tile-ir", print_ir=False)
    assert "tile.load" in tir and "tile.store" in tir
    llvm = al.inspect(scale, x, 4, 1.0, level="llvm", print_ir=False)
    assert "define" in llvm
    with pytest.raises(ValueError, match="unknown level"):
        al.inspect(scale, x, 4, 1.0, level="nope", print_ir=False)


def test_inspect_cuda_levels_need_no_gpu():
    x = np.zeros(4, np.float32)
    assert "gpu.func @scale" in al.inspect(scale, x, 4, 1.0, level="simt", print_ir=False)
    assert "llvm.func @scale" in al.inspect(scale, x, 4, 1.0, level="nvvm", print_ir=False)
    ptx = al.inspect(scale, x, 4, 1.0, level="ptx", print_ir=False)
    assert ".target sm_90a" in ptx and ".visible .entry scale(" in ptx
