"""Codecs against gguf-py's reference: bit-exact decoding of every supported type, and Q8_0/Q4_0 encoding."""
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as Q
from gguf import quants as ref

from alloy.serve.gguf import codecs
from alloy.serve.gguf.errors import CodecError, GGUFError

EXPECTED = {Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1,
            Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ4_NL, Q.IQ4_XS}

# byte offsets of the fp16 scale fields in each block (from ggml-common.h), forced finite
FP16_FIELDS = {
    Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2],
    Q.Q2_K: [80, 82], Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208],
    Q.IQ4_NL: [0], Q.IQ4_XS: [0],
}
ALL = sorted(EXPECTED)


def random_blocks(qtype, n_blocks, seed=0):
    rng = np.random.default_rng(seed)
    size = GGML_QUANT_SIZES[qtype][1]
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for at in FP16_FIELDS.get(qtype, []):
        scales = (rng.standard_normal(n_blocks) * 4).astype(np.float16)
        raw[:, at:at + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw


def reference(raw, qtype):
    if qtype in (Q.F32, Q.F16):
        return np.asarray(ref.dequantize(raw.reshape(-1), qtype), np.float32)
    return ref.dequantize(raw, qtype).reshape(-1)


def bits(x):
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def test_supported_set_and_block_info():
    assert codecs.SUPPORTED == EXPECTED
    for q in EXPECTED:
        assert codecs.block_info(q) == GGML_QUANT_SIZES[q]
        assert codecs.block_info(int(q)) == GGML_QUANT_SIZES[q]
        assert codecs.block_info(q.name.lower()) == GGML_QUANT_SIZES[q]


@pytest.mark.parametrize("qtype", ALL, ids=lambda q: q.name)
@pytest.mark.parametrize("n_blocks", [1, 3, 257])
def test_dequantize_bit_exact(qtype, n_blocks):
    block = GGML_QUANT_SIZES[qtype][0]
    if block == 1:
        n_blocks *= 32
    raw = random_blocks(qtype, n_blocks, seed=n_blocks)
    out = codecs.dequantize(raw, qtype, (n_blocks * block,))
    assert out.dtype == np.float32 and out.shape == (n_blocks * block,)
    np.testing.assert_array_equal(bits(out), bits(reference(raw, qtype)))


@pytest.mark.parametrize("qtype", ALL, ids=lambda q: q.name)
def test_dequantize_shapes_and_chunks(qtype, monkeypatch):
    """Multi-dimensional shapes, flat or shaped input, and the chunked path for big tensors."""
    block, _ = GGML_QUANT_SIZES[qtype]
    shape = (3, 2, 5 * max(block, 32))
    n_blocks = int(np.prod(shape)) // block
    raw = random_blocks(qtype, n_blocks, seed=7)
    expected = bits(reference(raw, qtype)).reshape(shape)
    whole = codecs.dequantize(raw.reshape(-1), qtype, shape)
    np.testing.assert_array_equal(bits(whole), expected)
    whole[...] = 0                                                   # a fresh, writable array
    monkeypatch.setattr(codecs, "_CHUNK_ELEMENTS", 3 * block)       # several chunks, a ragged last one
    out = codecs.dequantize(raw, qtype, shape)
    assert out.shape == shape
    np.testing.assert_array_equal(bits(out), expected)


def test_dequantize_errors():
    raw = random_blocks(Q.Q4_K, 2)
    with pytest.raises(CodecError, match="Q8_K.*not supported.*Q4_K"):
        codecs.dequantize(raw, Q.Q8_K, (512,))
    with pytest.raises(CodecError, match="unknown GGML tensor type 999"):
        codecs.dequantize(raw, 999, (512,))
    with pytest.raises(CodecError, match="needs 288 bytes, got 144"):
        codecs.dequantize(raw[:1], Q.Q4_K, (512,))
    with pytest.raises(CodecError, match="row length 100 is not a multiple of its block size 256"):
        codecs.dequantize(raw, Q.Q4_K, (2, 100))
    assert issubclass(CodecError, GGUFError) and issubclass(CodecError, ValueError)


def normal_rows(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * rng.uniform(0.01, 10, (*shape[:-1], 1))).astype(np.float32)
    rows = x.reshape(-1, shape[-1])
    rows[0, :32] = 0                                          # an all-zero block
    rows[1, :32] = np.linspace(-1, 1, 32, dtype=np.float32)      # exact halves under some scales
    return x


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0], ids=lambda q: q.name)
def test_quantize_matches_gguf_py(qtype):
    x = normal_rows((16, 256), seed=1)
    ours = codecs.quantize(x, qtype)
    assert ours.dtype == np.uint8 and ours.shape == (16, 256 // 32 * GGML_QUANT_SIZES[qtype][1])
    np.testing.assert_array_equal(ours, ref.quantize(x, qtype))


@pytest.mark.parametrize("qtype,levels", [(Q.Q8_0, 127), (Q.Q4_0, 8)], ids=["Q8_0", "Q4_0"])
def test_quantize_round_trip_error(qtype, levels):
    x = normal_rows((8, 4, 128), seed=2)
    y = codecs.dequantize(codecs.quantize(x, qtype), qtype, x.shape)
    blocks_x, blocks_y = x.reshape(-1, 32), y.reshape(-1, 32)
    step = np.abs(blocks_x).max(axis=1, keepdims=True) / levels      # the scale d of each block
    err = np.abs(blocks_x - blocks_y)
    # half a step of rounding, plus fp16 rounding of d times at most `levels` steps;
    # Q4_0 has only 7 steps on the positive side, so a value there may clip by one step
    slack = step * levels * 2.0 ** -11
    bound = step * (1.0 if qtype == Q.Q4_0 else 0.5) + slack
    assert np.all(err <= bound * (1 + 1e-6))
    assert np.all(blocks_y[0] == 0)
    # on average much better than the bound: the codec really quantizes this data
    assert err.mean() < 0.3 * step.mean()


def test_quantize_errors():
    with pytest.raises(CodecError, match="encoding of GGML type Q4_K is not supported"):
        codecs.quantize(np.zeros(256, np.float32), Q.Q4_K)
    with pytest.raises(CodecError, match="row length 48 is not a multiple"):
        codecs.quantize(np.zeros((2, 48), np.float32), Q.Q8_0)
