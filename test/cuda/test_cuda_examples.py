"""The shipped kernel examples on the CUDA target: each example's main() checks its result against numpy."""
import importlib.util
import pathlib

import pytest

import alloy.config

pytestmark = pytest.mark.cuda
EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "kernel"
CUDA_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*.py"))


@pytest.mark.parametrize("name", CUDA_EXAMPLES)
def test_example_on_cuda(name):
    from alloy.runtime import cuda

    spec = importlib.util.spec_from_file_location(f"alloy_cuda_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    old = alloy.config.get().target
    alloy.config.set(target="cuda")
    try:
        assert module.main() == 0
    except cuda.CudaUnavailable as e:
        pytest.skip(f"compiled to PTX only; not run: {e}")
    finally:
        alloy.config.set(target=old)
