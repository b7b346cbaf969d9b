"""GGUFFile on synthetic files: metadata, tensors, errors on malformed input, and the packaged models."""
import struct

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from alloy.serve.gguf import codecs
from alloy.serve.gguf.errors import GGUFError
from alloy.serve.gguf.reader import SUPPORTED_ARCHS, GGUFFile, TensorInfo
from alloy.serve.gguf.testing import SyntheticConfig, write_synthetic_model


# -- a hand-rolled GGUF byte builder, independent of gguf-py, for malformed files ----------
def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return gstr(key) + struct.pack("<I", vtype) + payload


def kv_str(key, value):
    return kv(key, V.STRING, gstr(value))


def tinfo(name, dims, qtype, offset):
    return gstr(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims) + \
        struct.pack("<IQ", qtype, offset)


def gguf_bytes(kvs=(), tensors=(), data=b"", version=3, magic=b"GGUF", arch="llama", align=32,
               n_tensors=None, n_kv=None):
    kvs = ([kv_str("general.architecture", arch)] if arch else []) + list(kvs)
    head = magic + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                               len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tensors)
    body += b"\0" * (-len(body) % align)
    return body + data


@pytest.fixture
def write(tmp_path):
    def write(data, name="m.gguf"):
        p = tmp_path / name
        p.write_bytes(data)
        return p
    return write


def raises_at(path, match, offset=None, **kwargs):
    with pytest.raises(GGUFError, match=match) as e:
        GGUFFile(path, **kwargs)
    assert str(path) in str(e.value) and e.value.path == str(path)
    if offset is not None:
        assert e.value.offset == offset and f"offset {offset}" in str(e.value)
    return e.value


# -- metadata and tensors --------------------------------------------------------------------
METADATA = {
    "t.u8": (7, V.UINT8), "t.i8": (-7, V.INT8), "t.u16": (65535, V.UINT16), "t.i16": (-300, V.INT16),
    "t.u32": (4_000_000_000, V.UINT32), "t.i32": (-2_000_000_000, V.INT32),
    "t.u64": (2**63 + 5, V.UINT64), "t.i64": (-(2**62), V.INT64),
    "t.f32": (0.5, V.FLOAT32), "t.f64": (1e-300, V.FLOAT64),
    "t.true": (True, V.BOOL), "t.false": (False, V.BOOL),
    "t.str": ("héllo ☃", V.STRING), "t.empty_str": ("", V.STRING),
}


def write_rich_file(path, alignment=None):
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "qwen3")
    if alignment:
        w.add_custom_alignment(alignment)
    for key, (value, vtype) in METADATA.items():
        w.add_key_value(key, value, vtype)
    w.add_key_value("t.ints", [1, -2, 3], V.ARRAY, sub_type=V.INT32)
    w.add_key_value("t.floats", [0.25, -1.5], V.ARRAY, sub_type=V.FLOAT32)
    w.add_key_value("t.strs", ["a", "", "ü"], V.ARRAY, sub_type=V.STRING)
    w.add_key_value("t.bools", [True, False], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("t.u8s", [1, 2, 255], V.ARRAY, sub_type=V.UINT8)
    tensors = {
        "a.f32": rng.standard_normal((2, 3, 5)).astype(np.float32),
        "b.f16": rng.standard_normal((4, 7)).astype(np.float16),
        "c.q8_0": rng.standard_normal((3, 64)).astype(np.float32),
        "d.q4_k": rng.integers(0, 256, (2, 144), dtype=np.uint8),
    }
    tensors["d.q4_k"][:, :4] = np.array([0.01, 0.02], np.float16).view(np.uint8)      # finite d, dmin
    w.add_tensor("a.f32", tensors["a.f32"])
    w.add_tensor("b.f16", tensors["b.f16"])
    w.add_tensor("c.q8_0", codecs.quantize(tensors["c.q8_0"], Q.Q8_0), raw_dtype=Q.Q8_0)
    w.add_tensor("d.q4_k", tensors["d.q4_k"], raw_dtype=Q.Q4_K)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def test_metadata_values(tmp_path):
    write_rich_file(tmp_path / "m.gguf")
    g = GGUFFile(tmp_path / "m.gguf")
    assert g.arch == "qwen3" and g.version == 3 and g.alignment == 32
    for key, (value, _) in METADATA.items():
        assert g.metadata[key] == value and type(g.metadata[key]) is type(value), key
    assert g.metadata["t.ints"] == [1, -2, 3]
    assert g.metadata["t.floats"] == [0.25, -1.5]
    assert g.metadata["t.strs"] == ["a", "", "ü"]
    assert g.metadata["t.bools"] == [True, False] and type(g.metadata["t.bools"][0]) is bool
    assert g.metadata["t.u8s"] == [1, 2, 255]
    # the same plain values gguf-py's reader gives
    r = gguf.GGUFReader(tmp_path / "m.gguf")
    assert g.metadata == {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    assert g.get("t.u8") == 7 and g.get("nope", 3) == 3 and g.require("t.str") == "héllo ☃"
    assert g.arch_get("missing") is None and g.arch_get("missing", 1) == 1
    assert g.check_arch() == "qwen3"


@pytest.mark.parametrize("alignment", [None, 64])
def test_tensors(tmp_path, alignment):
    tensors = write_rich_file(tmp_path / "m.gguf", alignment)
    g = GGUFFile(tmp_path / "m.gguf")
    r = {t.name: t for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    assert list(g.tensors) == ["a.f32", "b.f16", "c.q8_0", "d.q4_k"]
    expect = {"a.f32": ((2, 3, 5), Q.F32), "b.f16": ((4, 7), Q.F16), "c.q8_0": ((3, 64), Q.Q8_0),
              "d.q4_k": ((2, 256), Q.Q4_K)}
    for name, (shape, qtype) in expect.items():
        info = g.tensor(name)
        assert isinstance(info, TensorInfo)
        assert (info.name, info.shape, info.qtype) == (name, shape, qtype)
        assert info.offset == r[name].data_offset and info.offset % (alignment or 32) == 0
        assert info.data.dtype == np.uint8 and not info.data.flags.owndata and not info.data.flags.writeable
        np.testing.assert_array_equal(info.data, r[name].data.reshape(-1).view(np.uint8))
        assert info.n_bytes == info.data.size and info.n_elements == np.prod(shape)
    np.testing.assert_array_equal(g.dequantize("a.f32"), tensors["a.f32"])
    np.testing.assert_array_equal(g.dequantize("b.f16"), tensors["b.f16"].astype(np.float32))
    q8 = g.dequantize("c.q8_0")
    assert q8.shape == (3, 64) and np.abs(q8 - tensors["c.q8_0"]).max() < 0.03
    np.testing.assert_array_equal(g.dequantize("d.q4_k"), gguf.quants.dequantize(tensors["d.q4_k"], Q.Q4_K))


@pytest.mark.parametrize("arch", sorted(SUPPORTED_ARCHS))
def test_synthetic_models(tmp_path, arch):
    qtypes = {"ffn_down.weight": Q.Q4_0, "attn_v.weight": Q.Q5_1}
    m = write_synthetic_model(tmp_path / f"{arch}.gguf", arch, qtype=Q.Q8_0, qtype_for=qtypes,
                              tied_embeddings=arch != "qwen2")
    g = GGUFFile(m.path, require_supported_arch=True)
    assert g.arch == arch and set(g.tensors) == set(m.weights)
    for name, w in m.weights.items():
        np.testing.assert_array_equal(g.dequantize(name), w)
    assert g.tensor("blk.0.ffn_down.weight").qtype == Q.Q4_0
    assert g.tensor("blk.1.attn_v.weight").qtype == Q.Q5_1
    assert g.tensor("blk.0.attn_q.weight").qtype == Q.Q8_0
    assert g.tensor("output_norm.weight").qtype == Q.F32
    assert ("output.weight" in g.tensors) == (arch == "qwen2")
    c = m.config
    assert g.arch_get("block_count") == c.n_layers and g.arch_get("embedding_length") == c.d_model
    assert g.arch_get("attention.head_count_kv") == c.n_kv_heads
    assert g.tensor("blk.1.attn_k.weight").shape == (c.n_kv_heads * c.head_dim, c.d_model)
    assert g.tensor("token_embd.weight").shape == (len(m.tokens), c.d_model)
    assert g.metadata["tokenizer.ggml.tokens"] == m.tokens and g.metadata["tokenizer.ggml.merges"] == m.merges
    assert g.metadata["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    for key, value in m.metadata.items():
        if isinstance(value, float):
            assert g.metadata[key] == pytest.approx(value, rel=1e-7), key
        else:
            assert g.metadata[key] == value, key


def test_dequantize_rows(synthetic_model):
    m = synthetic_model("qwen2", qtype=Q.Q4_0, qtype_for={"token_embd.weight": Q.Q8_0})
    g = GGUFFile(m.path)
    emb = m.weights["token_embd.weight"]
    ids = np.array([[5, 0, 5], [len(emb) - 1, 17, 2]])
    np.testing.assert_array_equal(g.dequantize_rows("token_embd.weight", ids), emb[ids])
    assert g.dequantize_rows("token_embd.weight", []).shape == (0, m.config.d_model)
    w = m.weights["blk.0.ffn_down.weight"]
    np.testing.assert_array_equal(g.dequantize_rows("blk.0.ffn_down.weight", 3), w[3])
    for bad in ([len(emb)], [-1], [0.5]):
        with pytest.raises(GGUFError, match=r"row indices must be integers in \[0, 384\)"):
            g.dequantize_rows("token_embd.weight", bad)
    with pytest.raises(GGUFError, match="has no rows"):
        g.dequantize_rows("output_norm.weight", [0])


def test_synthetic_model_is_deterministic(tmp_path):
    c = SyntheticConfig(d_model=32, head_dim=8, d_ff=64, n_layers=1, seed=3)
    a = write_synthetic_model(tmp_path / "a.gguf", "gemma3", c, metadata={"gemma3.extra": 5,
                                                                          "gemma3.context_length": None})
    b = write_synthetic_model(tmp_path / "b.gguf", "gemma3", c)
    assert (tmp_path / "a.gguf").read_bytes() != (tmp_path / "b.gguf").read_bytes()
    assert a.tokens == b.tokens and a.merges == b.merges
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name])
    g = GGUFFile(a.path)
    assert g.arch_get("extra") == 5 and g.arch_get("context_length") is None
    assert set(g.tensors) >= {"blk.0.post_ffw_norm.weight", "blk.0.attn_q_norm.weight"}


# -- errors ----------------------------------------------------------------------------------
def test_missing_key_and_tensor(synthetic_model):
    m = synthetic_model("llama", config=SyntheticConfig(n_layers=1))
    g = GGUFFile(m.path)
    with pytest.raises(GGUFError, match="missing required metadata key 'llama.nope'") as e:
        g.arch_require("nope")
    assert str(m.path) in str(e.value)
    with pytest.raises(GGUFError, match="no tensor named 'blk.9.attn_q.weight'") as e:
        g.dequantize("blk.9.attn_q.weight")
    assert str(m.path) in str(e.value)


def test_unsupported_arch(write):
    p = write(gguf_bytes(arch="mamba"))
    g = GGUFFile(p)
    assert g.arch == "mamba" and g.tensors == {}
    raises_at(p, "architecture 'mamba' is not supported", require_supported_arch=True)
    with pytest.raises(GGUFError, match="not supported"):
        g.check_arch()


def test_no_architecture(write):
    raises_at(write(gguf_bytes(arch=None)), "missing required metadata key 'general.architecture'")
    raises_at(write(gguf_bytes([kv("general.architecture", V.UINT32, b"\1\0\0\0")], arch=None)),
              "general.architecture")


def test_missing_file_and_empty(tmp_path, write):
    raises_at(tmp_path / "nope.gguf", "cannot open")
    raises_at(write(b""), "truncated: expected GGUF magic", offset=0)


def test_bad_magic(write):
    raises_at(write(gguf_bytes(magic=b"GGML")), "bad magic b'GGML'", offset=0)


@pytest.mark.parametrize("version", [1, 4, 3 << 24])
def test_bad_version(write, version):
    e = raises_at(write(gguf_bytes(version=version)), f"unsupported GGUF version {version}", offset=4)
    assert ("big-endian" in str(e)) == (version == 3 << 24)


def test_version_2_reads(write):
    assert GGUFFile(write(gguf_bytes(version=2))).version == 2


def test_truncated_everywhere(write):
    data = gguf_bytes([kv_str("a.s", "xyz"), kv("a.arr", V.ARRAY, struct.pack("<IQ", V.INT16, 2) + b"\1\0\2\0")],
                      [tinfo("t", [32], Q.Q8_0, 0)], data=b"\0" * 34)
    GGUFFile(write(data))
    header_end = len(data) - 34
    for cut in range(0, len(data)):
        p = write(data[:cut], f"cut{cut}.gguf")
        e = raises_at(p, "truncated|ends at byte")
        assert e.offset is not None and e.offset <= max(cut, header_end)


def test_tensor_past_end_of_file(write):
    data = gguf_bytes(tensors=[tinfo("w", [32, 4], Q.Q8_0, 0)], data=b"\0" * (4 * 34))
    GGUFFile(write(data))
    e = raises_at(write(data[:-1], "short.gguf"), r"tensor 'w' \(Q8_0, shape \(4, 32\)\) data spans bytes")
    assert f"ends at byte {len(data) - 1}" in str(e)
    raises_at(write(gguf_bytes(tensors=[tinfo("w", [32], Q.Q8_0, 2**62)], data=b"\0" * 34), "far.gguf"),
              "data spans bytes")


def test_unknown_and_unsupported_tensor_types(write):
    header = len(gguf_bytes(align=1))
    type_at = header + len(gstr("w")) + 4 + 8
    e = raises_at(write(gguf_bytes(tensors=[tinfo("w", [32], 99, 0)], data=b"\0" * 64)),
                  "tensor 'w' has unknown GGML type id 99", offset=type_at)
    assert e.offset == type_at
    raises_at(write(gguf_bytes(tensors=[tinfo("w", [256], Q.Q8_K, 0)], data=b"\0" * 292), "k.gguf"),
              "type Q8_K, which Alloy cannot decode", offset=type_at)


@pytest.mark.parametrize("dims,match", [
    ([], "0 dimensions"), ([1, 1, 1, 1, 1], "5 dimensions"), ([32, 0], "bad shape"),
    ([2**32, 2**32], "bad shape"), ([48], "row length 48 is not a multiple of the block size 32"),
])
def test_bad_tensor_dims(write, dims, match):
    raises_at(write(gguf_bytes(tensors=[tinfo("w", dims, Q.Q8_0, 0)], data=b"\0" * 64)), match)


def test_unaligned_offset_and_duplicates(write):
    raises_at(write(gguf_bytes(tensors=[tinfo("w", [4], Q.F32, 8)], data=b"\0" * 64)),
              "data offset 8 is not a multiple of the alignment 32")
    raises_at(write(gguf_bytes(tensors=[tinfo("w", [4], Q.F32, 0), tinfo("w", [4], Q.F32, 32)],
                               data=b"\0" * 64), "dup.gguf"), "duplicate tensor name 'w'")
    raises_at(write(gguf_bytes([kv_str("a", "x"), kv_str("a", "y")]), "dupkv.gguf"), "duplicate metadata key 'a'")


@pytest.mark.parametrize("value", [0, 3, 48])
def test_bad_alignment(write, value):
    raises_at(write(gguf_bytes([kv("general.alignment", V.UINT32, struct.pack("<I", value))])),
              "general.alignment must be a non-zero power of two")


def test_bad_values(write):
    at = len(gguf_bytes(align=1)) + len(gstr("k"))
    raises_at(write(gguf_bytes([kv("k", 13, b"")], align=1)), "k: unknown GGUF value type 13", offset=at)
    raises_at(write(gguf_bytes([kv("k", V.BOOL, b"\2")]), "b.gguf"), "bool must be 0 or 1, got 2")
    raises_at(write(gguf_bytes([kv("k", V.ARRAY, struct.pack("<IQ", V.BOOL, 2) + b"\1\7")]), "ba.gguf"),
              "bool elements must be 0 or 1")
    raises_at(write(gguf_bytes([kv("k", V.STRING, gstr(b"\xff\xfe"))]), "u.gguf"), "k is not valid UTF-8")
    raises_at(write(gguf_bytes([kv(b"\xc3", V.UINT8, b"\1")]), "uk.gguf"), "metadata key is not valid UTF-8")
    raises_at(write(gguf_bytes([kv("k", V.ARRAY, struct.pack("<IQ", V.STRING, 1) + gstr(b"\x80"))]), "us.gguf"),
              r"k\[0\] is not valid UTF-8")


def test_hostile_lengths_fail_fast(write):
    """Counts far beyond the file size fail at once (gguf-py's reader would loop over them)."""
    huge = 2**62
    raises_at(write(gguf_bytes([kv("k", V.ARRAY, struct.pack("<IQ", V.UINT8, huge))])), "truncated")
    raises_at(write(gguf_bytes([kv("k", V.ARRAY, struct.pack("<IQ", V.STRING, huge))]), "s.gguf"),
              "claims 4611686018427387904 STRING elements")
    raises_at(write(gguf_bytes([kv("k", V.STRING, struct.pack("<Q", huge))]), "l.gguf"), "truncated")
    raises_at(write(gguf_bytes(n_kv=huge), "n.gguf"), "more than the .* byte file can hold", offset=8)
    raises_at(write(gguf_bytes(n_tensors=huge), "t.gguf"), "more than the .* byte file can hold", offset=8)
    nested = struct.pack("<IQ", V.ARRAY, 1) * 20 + struct.pack("<IQ", V.UINT8, 0)
    raises_at(write(gguf_bytes([kv("k", V.ARRAY, nested)]), "deep.gguf"), "nested deeper than 8")
    ok = struct.pack("<IQ", V.ARRAY, 2) + (struct.pack("<IQ", V.UINT16, 1) + b"\5\0") * 2
    assert GGUFFile(write(gguf_bytes([kv("k", V.ARRAY, ok)]), "ok.gguf")).metadata["k"] == [[5], [5]]


def test_dequantize_error_names_tensor(write, monkeypatch):
    g = GGUFFile(write(gguf_bytes(tensors=[tinfo("w", [32], Q.Q8_0, 0)], data=b"\0" * 34)))
    monkeypatch.setattr(codecs, "_DECODERS", {})
    with pytest.raises(GGUFError, match="tensor 'w': decoding of GGML type Q8_0 is not supported") as e:
        g.dequantize("w")
    assert str(g.path) in str(e.value) and e.value.offset == g.tensor("w").offset


# -- the packaged real models ------------------------------------------------------------------
@pytest.mark.slow
def test_packaged_models_decode_like_gguf_py(gemma3_gguf_path, smollm2_gguf_path):
    seen = {}
    for path in (gemma3_gguf_path, smollm2_gguf_path):
        g = GGUFFile(path, require_supported_arch=True)
        assert g.arch_get("block_count") in (18, 30)
        by_type = {}
        for info in g.tensors.values():
            by_type.setdefault(info.qtype, []).append(info)
        for qtype, infos in by_type.items():
            seen.setdefault(qtype, 0)
            for info in sorted(infos, key=lambda i: i.n_bytes)[:2]:   # the two smallest of each type
                ours = g.dequantize(info.name)
                rows = info.data.reshape(info.shape[0] if len(info.shape) > 1 else 1, -1)
                theirs = np.asarray(gguf.quants.dequantize(rows.view(np.float32) if qtype == Q.F32 else rows,
                                                           qtype), np.float32).reshape(info.shape)
                np.testing.assert_array_equal(ours.view(np.uint32), theirs.view(np.uint32), err_msg=info.name)
                seen[qtype] += 1
    assert {Q.F32, Q.Q8_0, Q.Q5_0, Q.Q4_K, Q.Q6_K, Q.Q4_1} <= set(seen)


@pytest.mark.slow
def test_packaged_smollm2_header_like_gguf_py(smollm2_gguf_path):
    g = GGUFFile(smollm2_gguf_path)
    r = gguf.GGUFReader(smollm2_gguf_path)
    assert g.metadata == {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    assert len(g.metadata["tokenizer.ggml.tokens"]) == g.arch_get("vocab_size") == 49152
    assert [t.name for t in r.tensors] == list(g.tensors)
    for t in r.tensors:
        info = g.tensors[t.name]
        assert (info.offset, info.qtype, info.shape) == (t.data_offset, t.tensor_type, tuple(t.shape[::-1].tolist()))
