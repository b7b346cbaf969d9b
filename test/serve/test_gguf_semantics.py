"""Files that parse but cannot be a model: overlapping tensor data, non-finite or non-positive
hyper-parameters, a vocabulary no tokenizer can be built from — each a GGUFError naming the file."""

import math

import pytest

from alloy.serve.gguf.errors import GGUFError
from alloy.serve.gguf.reader import GGUFFile
from alloy.serve.gguf.testing import write_synthetic_model


def _overlap_second_tensor(path):
    """Point the second tensor's data offset at the first one's (in place)."""
    import gguf

    reader = gguf.GGUFReader(str(path), "r+")
    first, second = reader.tensors[0], reader.tensors[1]
    offset_part = second.field.parts[-1]
    offset_part[0] = first.field.parts[-1][0]
    reader.data.flush()
    return first.name, second.name


def test_overlapping_tensors(tmp_path):
    path = write_synthetic_model(tmp_path / "overlap.gguf", "llama").path
    first, second = _overlap_second_tensor(path)
    with pytest.raises(GGUFError, match="overlap") as err:
        GGUFFile(path)
    assert err.value.path == str(path) and str(path) in str(err.value)
    assert first in str(err.value) and second in str(err.value)


@pytest.mark.parametrize("key,value", [
    ("llama.attention.layer_norm_rms_epsilon", math.nan),
    ("llama.attention.layer_norm_rms_epsilon", -1e-5),
    ("llama.rope.freq_base", math.inf),
    ("llama.rope.freq_base", 0.0),
])
def test_non_finite_hyper_parameters(tmp_path, key, value):
    from alloy.serve.generate import load

    path = write_synthetic_model(tmp_path / "bad.gguf", "llama", metadata={key: float(value)}).path
    with pytest.raises(GGUFError, match=key.split(".", 1)[1].replace(".", r"\.")) as err:
        load(path, engine="reference")
    assert str(path) in str(err.value)


def test_tokenizer_that_cannot_be_built(tmp_path):
    from alloy.serve.gguf.tokenizer import Tokenizer

    path = write_synthetic_model(tmp_path / "merges.gguf", "llama",
                                 metadata={"tokenizer.ggml.merges": ["no-space-in-this-merge"]}).path
    with pytest.raises(GGUFError, match="tokenizer") as err:
        Tokenizer.from_gguf(GGUFFile(path), cache_dir=tmp_path / "tok")
    assert str(path) in str(err.value)
