"""The Metal device without Metal (every machine this project has): a launch compiles the kernel's MSL
into the kernel cache, which the shim accepts, then says why it cannot run. The Metal runtime itself
(runtime/metal/device.mm, macOS only) is unverified: no Mac is available."""
import numpy as np
import pytest

import alloy as al
import alloy.config
from alloy.runtime import metal


@al.kernel
def axpy(x, y, out: al.output, a, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, a * al.load(x + offs, mask=m) + al.load(y + offs, mask=m), mask=m)


@pytest.fixture
def on_metal(tmp_path):
    old = alloy.config.get()
    axpy._compiled.clear()
    alloy.config.set(target="metal", cache_dir=tmp_path)
    yield tmp_path
    alloy.config.set(target=old.target, cache_dir=old.cache_dir)
    axpy._compiled.clear()


@pytest.mark.skipif(metal.available(), reason="a Metal device is present")
def test_launch_without_metal_caches_msl_then_says_why_shim(on_metal):
    from alloy.targets.metal import check_msl

    x = np.arange(1000, dtype=np.float32)
    with pytest.raises(metal.MetalUnavailable, match="Metal runs only on macOS"):
        axpy[4](x, x, 2.0, 1000)
    [msl_file] = on_metal.glob("kernels/metal/*/*.metal")
    msl = msl_file.read_text()
    assert "kernel void axpy(" in msl and "[[buffer(0)]]" in msl
    check_msl(msl, name="axpy.metal")
    meta = msl_file.with_suffix(".json").read_text()
    assert '"params": ["ptr", "i32", "ptr", "i32", "ptr", "f32", "i32"]' in meta  # one per [[buffer(i)]]


def test_scalar_sizes_cover_the_kernel_parameter_types():
    assert metal.SCALAR_BYTES["f32"] == 4 and metal.SCALAR_BYTES["i64"] == 8 and metal.SCALAR_BYTES["index"] == 4
