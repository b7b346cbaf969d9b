"""Fixtures shared by the CPU-target kernel tests."""
import pytest


@pytest.fixture
def cpu_compiles(monkeypatch, tmp_path):
    """A private kernel cache directory; the list of CPU compilations made (one entry each).
    Kernels keep compiled code in memory too: clear `kernel._compiled` of the kernels used."""
    import alloy.runtime.specializations as specializations
    import alloy.config as config
    import alloy.targets.cpu as cpu_target

    calls = []
    real = cpu_target.compile_tile_module

    def counting(module, **kw):
        calls.append(1)
        return real(module, **kw)

    monkeypatch.setattr(cpu_target, "compile_tile_module", counting)
    old = config.get().cache_dir
    config.set(cache_dir=tmp_path / "cache")
    monkeypatch.setattr(specializations, "_cache", None)
    yield calls
    config.set(cache_dir=old)
