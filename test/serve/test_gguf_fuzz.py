"""Fuzz GGUFFile with truncated and corrupted copies of a valid file: only GGUFError may come out."""
import tempfile
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alloy.serve.gguf.errors import GGUFError
from alloy.serve.gguf.reader import GGUFFile


def _valid_file(path: Path) -> bytes:
    """A small file with every kind of field, header-heavy so mutations mostly hit structure."""
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint32("llama.block_count", 1)
    w.add_float32("llama.rope.freq_base", 1e4)
    w.add_bool("tokenizer.ggml.add_bos_token", True)
    w.add_key_value("i64", -5, V.INT64)
    w.add_key_value("f64", 2.5, V.FLOAT64)
    w.add_key_value("tokenizer.ggml.tokens", ["<s>", "a", "bc", "☃"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("tokenizer.ggml.scores", [0.0, -1.0, -2.0, -3.0], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("flags", [True, False], V.ARRAY, sub_type=V.BOOL)
    w.add_tensor("norm", rng.standard_normal(8).astype(np.float32))
    w.add_tensor("w16", rng.standard_normal((2, 4)).astype(np.float16))
    q8 = rng.integers(0, 256, (2, 34), dtype=np.uint8)
    q8[:, :2] = np.array([0.5], np.float16).view(np.uint8)
    w.add_tensor("q8", q8, raw_dtype=Q.Q8_0)
    q4k = rng.integers(0, 256, (1, 144), dtype=np.uint8)
    q4k[:, :4] = np.array([0.5, 0.25], np.float16).view(np.uint8)
    w.add_tensor("q4k", q4k, raw_dtype=Q.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


_DIR = tempfile.TemporaryDirectory(prefix="alloy-gguf-fuzz-")
_VALID = _valid_file(Path(_DIR.name) / "valid.gguf")
_HEADER = GGUFFile(Path(_DIR.name) / "valid.gguf").data_offset


def _check(data: bytes) -> None:
    path = Path(_DIR.name) / "case.gguf"
    path.write_bytes(data)
    try:
        g = GGUFFile(path, require_supported_arch=True)
    except GGUFError as e:
        assert str(path) in str(e)
        return
    for name in g.tensors:
        out = g.dequantize(name)
        assert out.shape == g.tensor(name).shape and out.dtype == np.float32
    assert isinstance(g.metadata, dict)


def test_valid_file_reads():
    g = GGUFFile(Path(_DIR.name) / "valid.gguf")
    assert set(g.tensors) == {"norm", "w16", "q8", "q4k"} and g.metadata["flags"] == [True, False]


_FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.timeout(120)
@_FUZZ
@given(st.integers(0, len(_VALID) - 1))
def test_truncated(cut):
    _check(_VALID[:cut])


@pytest.mark.timeout(120)
@_FUZZ
@given(st.lists(st.tuples(st.integers(0, _HEADER - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_corrupted_header(edits):
    data = bytearray(_VALID)
    for at, value in edits:
        data[at] = value
    _check(bytes(data))


@pytest.mark.timeout(120)
@_FUZZ
@given(st.integers(0, _HEADER - 8), st.sampled_from([0, 1, 2**31, 2**32 - 1, 2**63, 2**64 - 1]),
       st.integers(4, 8))
def test_hostile_integers(at, value, width):
    """Overwrite a length, count or offset field with an extreme value."""
    data = bytearray(_VALID)
    data[at:at + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
    _check(bytes(data))
