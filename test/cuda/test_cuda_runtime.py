"""The CUDA runtime's behaviour without and with a driver: clear errors, compile-only launches,
device buffers, and the PTX cache (the parts marked `cuda` need a GPU)."""
import numpy as np
import pytest

import alloy as al
import alloy.config
from alloy.runtime import cuda

@al.kernel
def scale(x, out: al.output, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    al.store(out + offs, al.load(x + offs, mask=offs < N) * 2.0, mask=offs < N)


def _forget_compiled():
    scale._compiled.clear()  # in-process memo: the next launch reads the configured cache again
    cuda._plans.clear()


@pytest.fixture
def on_cuda(tmp_path):
    """The CUDA target with a private, empty kernel cache."""
    old = alloy.config.get()
    _forget_compiled()
    alloy.config.set(target="cuda", cache_dir=tmp_path)
    yield tmp_path
    alloy.config.set(target=old.target, cache_dir=old.cache_dir)
    cuda.compile_only(False)
    _forget_compiled()


def test_set_device_selects_the_target():
    old = alloy.config.get().target
    try:
        cuda.set_device("cuda")
        assert alloy.config.get().target == "cuda"
        with pytest.raises(ValueError, match="Config.target"):
            cuda.set_device("tpu")
    finally:
        alloy.config.set(target=old)


@pytest.mark.skipif(cuda.available(), reason="a CUDA driver is present")
def test_launch_without_driver_compiles_then_says_why(on_cuda):
    x = np.arange(300, dtype=np.float32)
    with pytest.raises(cuda.CudaUnavailable, match="CUDA|libcuda|_runtime"):
        scale[2](x, 300)
    assert list(on_cuda.glob("kernels/cuda/*/*.ptx")), "the PTX was not cached before the driver check"


@pytest.mark.skipif(cuda.available(), reason="a CUDA driver is present")
def test_compile_only_returns_outputs_of_the_inferred_shape(on_cuda):
    cuda.compile_only(True)
    y = scale[2](np.ones(300, np.float32), 300)
    assert isinstance(y, np.ndarray) and y.shape == (300,) and y.dtype == np.float32


def test_cache_miss_without_mlir_fails_loudly(on_cuda, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlir" else real(name, *a))
    with pytest.raises(RuntimeError, match="no PTX for this specialisation in the kernel cache"):
        scale[1](np.ones(4, np.float32), 4, BLOCK=128)  # a specialisation not compiled yet


def test_ptx_cache_round_trip(on_cuda):
    from alloy.runtime.specializations import PTX_CACHE

    PTX_CACHE.put("ab" + "0" * 62, ".version 8.0", {"entry": "k", "num_threads": 32})
    ptx, meta = PTX_CACHE.get("ab" + "0" * 62)
    assert ptx == ".version 8.0" and meta == {"entry": "k", "num_threads": 32}
    assert (on_cuda / "kernels" / "cuda" / "ab" / ("ab" + "0" * 62 + ".ptx")).read_text() == ".version 8.0"
    assert PTX_CACHE.get("cd" + "0" * 62) is None


@pytest.mark.cuda
def test_device_buffer_round_trip_and_launch(run_cuda):
    x = np.arange(1000, dtype=np.float32)
    np.testing.assert_array_equal(run_cuda(scale, 4, x, 1000), 2 * x)  # compiles; skips without a GPU
    buf = cuda.DeviceBuffer.from_numpy(x)
    np.testing.assert_array_equal(buf.numpy(), x)
    out = run_cuda(scale, 4, buf, 1000)
    assert isinstance(out, cuda.DeviceBuffer)
    np.testing.assert_array_equal(out.numpy(), 2 * x)


@pytest.mark.cuda
def test_torch_cuda_tensors_are_bound_without_copies(run_cuda):
    x = np.arange(1000, dtype=np.float32)
    got = np.zeros(1000, np.float32)
    run_cuda(scale, 4, x, 1000, out=got)  # compiles; skips without a GPU
    np.testing.assert_array_equal(got, 2 * x)
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    xt = torch.arange(1000, dtype=torch.float32, device="cuda")
    out = torch.empty_like(xt)
    assert run_cuda(scale, 4, xt, 1000, out=out) is out
    torch.testing.assert_close(out, 2 * xt)
