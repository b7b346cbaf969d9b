"""CUDA tests: kernels compile to PTX here; they run where a CUDA driver is present.

`run_cuda(kernel, grid, *args, **kwargs)` launches on the CUDA target and
skips the test (after compiling, which fills the kernel cache) when the
driver is missing, so the same tests fill a cache on a machine without a GPU
and run from it on the GPU machine.
"""
import pytest

import alloy.config


@pytest.fixture
def run_cuda():
    from alloy.runtime import cuda

    old = alloy.config.get().target

    def run(kernel, grid, *args, **kwargs):
        alloy.config.set(target="cuda")
        try:
            return kernel[grid](*args, **kwargs)
        except cuda.CudaUnavailable as e:
            pytest.skip(f"compiled to PTX only; not run: {e}")
        finally:
            alloy.config.set(target=old)

    return run
