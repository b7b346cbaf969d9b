"""Every shipped kernel (examples/kernel) through the Metal pipeline: tile IR -> SIMT -> MSL,
then the MSL checked against the Metal-stdlib shim. Each example runs on the CPU target while its
kernel launches are recorded to get their real specializations; nothing runs on Metal."""
import importlib.util
import pathlib

import pytest

import alloy.compiler

_spec = importlib.util.spec_from_file_location("alloy_shipped_kernels",
                                               pathlib.Path(__file__).resolve().parents[1] / "shipped_kernels.py")
shipped = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shipped)
EXAMPLES = shipped.EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_shipped_kernel_msl_passes_shim(path, monkeypatch):
    from alloy.targets.metal import check_msl, compile_tile_module

    kernels = shipped.specializations(path, monkeypatch)
    assert kernels, f"{path.name} launched no kernel"
    for source, spec in kernels:
        ctx, module, _ = alloy.compiler.tile_ir(source, spec)
        with ctx:
            art = compile_tile_module(module, keep_stages=True)
        assert set(art.stages) == {"tile-ir", "tile-opt", "simt", "msl"}
        assert f"kernel void {art.entry}(" in art.msl
        assert art.num_threads > 0
        check_msl(art.msl, name=f"{path.stem}.{art.entry}.metal")


def test_inspect_msl_level():
    import numpy as np

    import alloy as al

    @al.kernel
    def scale(x, out: al.output, N, BLOCK: al.constexpr = 256):
        offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
        al.store(out + offs, al.load(x + offs, mask=offs < N) * 2.0, mask=offs < N)

    from alloy.inspection import levels

    assert "msl" in levels()
    x = np.zeros(8, np.float32)
    msl = al.inspect(scale, x, 8, level="msl")
    assert "kernel void scale(" in msl
    assert "device float* arg0 [[buffer(0)]]" in msl
