"""The compiled engine (alloy.serve.ops.alloy) against the numpy reference: every GGUF block type
through the quantized kernels, whole synthetic and packaged models, the CLI's engine choice."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from gguf import GGMLQuantizationType as Q

import alloy as al
from alloy.cli.main import alloy as alloy_cli
from alloy.serve.generate import engine_ops, load
from alloy.serve.gguf.codecs import SUPPORTED, block_info, dequantize, iquants, kquants, legacy
from alloy.serve.gguf.reader import GGUFFile
from alloy.serve.gguf.testing import SyntheticConfig
from alloy.serve.models import model_from_gguf
from alloy.serve.ops.alloy import AlloyOps, QuantWeight, repack
from alloy.serve.ops.reference import ReferenceOps, rope_table

BLOCK_LAYOUTS = {Q.Q8_0: legacy.Q8_0, Q.Q4_0: legacy.Q4_0, Q.Q4_1: legacy.Q4_1, Q.Q5_0: legacy.Q5_0,
                 Q.Q5_1: legacy.Q5_1, Q.Q2_K: kquants.Q2_K, Q.Q3_K: kquants.Q3_K, Q.Q4_K: kquants.Q4_K,
                 Q.Q5_K: kquants.Q5_K, Q.Q6_K: kquants.Q6_K, Q.IQ4_NL: iquants.IQ4_NL, Q.IQ4_XS: iquants.IQ4_XS}
FLOATS = {Q.F32: np.float32, Q.F16: np.float16}


class Tensor:
    def __init__(self, name, shape, qtype, data):
        self.name, self.shape, self.qtype, self.data = name, shape, qtype, data


def random_tensor(qtype: Q, shape: tuple[int, int], seed: int = 0) -> Tensor:
    """Random blocks of ``qtype``: integer fields uniform over their range, fp16 scales small and finite."""
    rng = np.random.default_rng(seed)
    n_out, n_in = shape
    if qtype in FLOATS or qtype == Q.BF16:
        x = rng.standard_normal(shape).astype(np.float32)
        raw = (x.view(np.uint32) >> 16).astype(np.uint16) if qtype == Q.BF16 else x.astype(FLOATS[qtype])
        return Tensor("w", shape, qtype, raw.view(np.uint8).reshape(n_out, -1))
    layout = BLOCK_LAYOUTS[qtype]
    block, _ = block_info(qtype)
    blocks = np.zeros(n_out * n_in // block, layout)
    for field in layout.names:
        base = layout[field].base
        size = blocks[field].shape
        if base == np.float16:
            blocks[field] = (rng.uniform(0.002, 0.05, size) * rng.choice([-1, 1], size)).astype(np.float16)
        elif base == np.uint16:
            blocks[field] = rng.integers(0, 1 << 16, size, dtype=np.uint16)
        else:
            info = np.iinfo(base)
            blocks[field] = rng.integers(info.min, info.max + 1, size).astype(base)
    return Tensor("w", shape, qtype, blocks.view(np.uint8).reshape(n_out, -1))


ALL_TYPES = sorted(SUPPORTED, key=lambda q: q.value)


@pytest.mark.parametrize("qtype", ALL_TYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("rows", [1, 3, 37, 100])   # matvec, 3 rows a program, 4-row programs + 1, tiled
def test_quantized_matmul_matches_dequantized(qtype, rows):
    shape = (72, 512)                      # 72 outputs: not a multiple of the kernels' output blocks
    tensor = random_tensor(qtype, shape)
    dense = dequantize(tensor.data, qtype, shape)
    x = np.random.default_rng(1).standard_normal((rows, shape[1])).astype(np.float32)
    ops = AlloyOps()
    w = ops.weight(tensor)
    with al.profile() as p:
        y = ops.matmul(x, w)
    assert p.launches == (2 if rows == 37 and isinstance(w, QuantWeight) else 1)
    expected = x.astype(np.float64) @ dense.T.astype(np.float64)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    ids = [5, 0, 71, 5]
    np.testing.assert_allclose(ops.embedding(w, ids), dense[ids], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("qtype", [q for q in ALL_TYPES if q in BLOCK_LAYOUTS], ids=lambda q: q.name)
def test_weights_stay_quantized(qtype):
    tensor = random_tensor(qtype, (64, 512))
    w = repack(tensor)
    assert isinstance(w, QuantWeight)
    # codes take a byte an element (4-bit types half a byte), scales and offsets one value a group
    elements, groups = 64 * 512, 64 * 512 // w.group
    assert w.codes.nbytes == elements // (2 if w.nibble_bias is not None else 1)
    assert w.nbytes <= w.codes.nbytes + 2 * 4 * groups
    assert (w.nibble_bias is not None) == (qtype in (Q.Q4_0, Q.Q4_1, Q.Q4_K))
    if qtype in (Q.Q4_0, Q.Q4_1, Q.Q8_0):  # as compact as the file: nibbles/int8 + fp16 scales
        assert w.nbytes == tensor.data.nbytes
    super_block = qtype in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ4_XS)
    assert w.groups_per_block == (256 // w.group if super_block else 0)   # scales kept as their two factors
    if qtype == Q.Q4_K:
        assert w.nbytes <= 1.03 * tensor.data.nbytes


def test_matmul_bias_and_shape_errors():
    ops = AlloyOps()
    w = ops.weight(random_tensor(Q.Q8_0, (40, 64)))
    x = np.ones((2, 64), np.float32)
    bias = np.arange(40, dtype=np.float32)
    np.testing.assert_allclose(ops.matmul(x, w, bias) - ops.matmul(x, w), np.broadcast_to(bias, (2, 40)), atol=1e-4)
    with pytest.raises(ValueError, match="inner sizes differ"):
        ops.matmul(np.ones((2, 32), np.float32), w)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ops.embedding(w, [40])


@pytest.mark.parametrize("style", ["normal", "neox"])
def test_elementwise_norm_rope_ops_match_reference(style):
    rng = np.random.default_rng(3)
    ops, ref = AlloyOps(), ReferenceOps()
    x = rng.standard_normal((5, 4, 24)).astype(np.float32)
    w = rng.standard_normal(24).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    pos = np.array([0, 1, 2, 7, 300])
    for name, args in [("add", (x, w)), ("mul", (x, x)), ("scale", (x, 0.3)), ("softcap", (x, 2.0)),
                       ("gelu", (x,)), ("silu", (x,)), ("softmax", (x,)), ("rms_norm", (x, w, 1e-6)),
                       ("rms_norm", (x, None, 1e-5)), ("layer_norm", (x, w, b, 1e-5))]:
        np.testing.assert_allclose(getattr(ops, name)(*args), getattr(ref, name)(*args), rtol=2e-5, atol=2e-6,
                                   err_msg=name)
    for n_rot in (24, 16):
        kw = dict(n_rot=n_rot, base=10000.0, style=style, freq_scale=0.5,
                  freq_factors=np.linspace(1, 2, n_rot // 2) if n_rot == 16 else None)
        np.testing.assert_allclose(ops.rope(x, pos, **kw), ref.rope(x, pos, **kw), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kv", ["f32", "f16"])
@pytest.mark.parametrize("window,softcap", [(0, 0.0), (5, 0.0), (0, 30.0)])
def test_attention_over_the_cache_matches_reference(window, softcap, kv):
    rng = np.random.default_rng(4)
    ops, ref = AlloyOps(kv=kv), ReferenceOps(kv)   # the same keys and values: the same rounding
    n_head, n_kv, dk, dv = 6, 2, 16, 8
    kv_a, kv_r = ops.kv_buffer(600, n_kv, dk, dv), ref.kv_buffer(600, n_kv, dk, dv)
    start = 0
    for n in (7, 1, 1, 300, 1, 250, 1):        # prefill, decode, chunks that grow the cache past 256 and 512
        # (from 512 positions of capacity on, decoding takes the split-over-keys kernels)
        q = rng.standard_normal((n, n_head, dk)).astype(np.float32)
        k = rng.standard_normal((n, n_kv, dk)).astype(np.float32)
        v = rng.standard_normal((n, n_kv, dv)).astype(np.float32)
        kw = dict(scale=0.25, window=window, softcap=softcap)
        got = ops.attention(q, k, v, kv_a, start, **kw)
        np.testing.assert_allclose(got, ref.attention(q, k, v, kv_r, start, **kw), rtol=1e-4, atol=1e-5)
        start += n


CONFIGS = {
    "llama": SyntheticConfig(d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128),
    "qwen2": SyntheticConfig(d_model=64, n_heads=4, n_kv_heads=2, head_dim=16, d_ff=128),
    "qwen3": SyntheticConfig(d_model=64, n_heads=4, n_kv_heads=1, head_dim=32, d_ff=96),
    "gemma3": SyntheticConfig(d_model=64, n_heads=2, n_kv_heads=1, head_dim=32, d_ff=128, sliding_window=6),
}
MIXES = {"llama": {"qtype": Q.Q4_0, "qtype_for": {"ffn_down.weight": Q.Q8_0}},
         "qwen2": {"qtype": Q.Q5_1, "qtype_for": {"attn_v.weight": Q.F16}},
         "qwen3": {"qtype": Q.Q4_1, "qtype_for": {"ffn_up.weight": Q.Q5_0}},
         "gemma3": {"qtype": Q.Q8_0, "qtype_for": {"attn_q.weight": Q.BF16}}}


def _compare(file, ids, rel, kv="f32"):
    """Compiled vs reference logits over a prefill and two decode steps. With an ``f16`` KV cache both round
    keys and values, and a one-ulp difference there moves logits by ~1e-3 of their scale: a wider ``rel``."""
    reference = model_from_gguf(file, ReferenceOps(kv))
    compiled = model_from_gguf(file, AlloyOps(kv=kv))
    cache_r, cache_a = reference.new_cache(64), compiled.new_cache(64)
    scale = None
    with al.profile() as p:
        for chunk in (ids, ids[:1], ids[1:2]):
            expected = reference.forward(chunk, cache_r)
            got = compiled.forward(chunk, cache_a)
            scale = scale or np.abs(expected).max()
            np.testing.assert_allclose(got, expected, atol=rel * scale, rtol=0)
    assert p.launches > 0   # Alloy kernels ran (no silent numpy path)


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_synthetic_models_match_reference(arch, synthetic_model):
    sm = synthetic_model(arch, config=CONFIGS[arch], tied_embeddings=arch != "llama", **MIXES[arch])
    _compare(GGUFFile(sm.path), [3, 17, 99, 5, 250, 8, 42, 7, 11], rel=1e-4)


@pytest.mark.parametrize("fixture", ["smollm2_gguf_path", "gemma3_gguf_path"])
def test_packaged_models_match_reference(fixture, request):
    path = request.getfixturevalue(fixture)
    _compare(GGUFFile(path), [2, 504, 3714, 314, 1204, 9, 34, 5365, 10, 12], rel=2e-4)
    _compare(GGUFFile(path), [2, 504, 3714, 314, 1204, 9, 34, 5365, 10, 12], rel=5e-3, kv="f16")
    _compare(GGUFFile(path), [2, 504, 3714, 314, 1204, 9, 34, 5365, 10, 12], rel=3e-2, kv="q8_0")


@pytest.mark.parametrize("ref", ["smollm2:135m", "gemma3:270m"])
def test_kv_cache_types_keep_greedy_decoding(ref):
    """Quality of the KV types: greedy tokens with a float16 cache are float32's; q8_0's agree for a while
    (measured on both packaged models: 7 to 64 leading tokens of 64 alike)."""
    from alloy.serve.generate import stream_generate

    prompts = ["The history of the Roman Empire", "def quicksort(arr):"]
    runs = {}
    for kv in ("f32", "f16", "q8_0"):
        model, tok = load(ref, kv=kv)
        runs[kv] = [[r.token for r in stream_generate(model, tok, p, max_tokens=32, temperature=0)] for p in prompts]
    assert runs["f16"] == runs["f32"]
    for exact, quantized in zip(runs["f32"], runs["q8_0"]):
        assert quantized[:5] == exact[:5]


def test_kv_cache_stores_float16_by_default(synthetic_model):
    sm = synthetic_model("llama", config=CONFIGS["llama"])
    for ops in (AlloyOps(), ReferenceOps("f16"), engine_ops("reference")):
        model = model_from_gguf(GGUFFile(sm.path), ops)
        cache = model.new_cache(16)
        model.forward([1, 2, 3], cache)
        assert all(kv.k.dtype == np.float16 and kv.v.dtype == np.float16 for kv in cache.layers)
        assert np.abs(cache.layers[0].k[:, :3]).max() > 0   # the keys were written
    with pytest.raises(ValueError, match="KV cache type 'q8' is not one of f16, f32, q8_0"):
        AlloyOps(kv="q8")
    with pytest.raises(ValueError, match="multiples of 32, not 16 and 16"):
        AlloyOps(kv="q8_0").kv_buffer(8, 1, 16, 16)


def test_q8_0_cache_matches_the_reference_quantization():
    """The cache-store kernel's q8_0 codes and scales are the numpy quantizer's, bit for bit, and attention over
    them (prefill, decode, and the split-over-keys kernels past 512 positions) matches the reference."""
    from alloy.serve.ops.arrays import dequantize_q8_0, quantize_q8_0

    rng = np.random.default_rng(5)
    ops, ref = AlloyOps(kv="q8_0"), ReferenceOps("q8_0")
    n_head, n_kv, dk, dv = 8, 2, 64, 32
    kv_a, kv_r = ops.kv_buffer(700, n_kv, dk, dv), ref.kv_buffer(700, n_kv, dk, dv)
    start = 0
    for n in (7, 1, 300, 1, 250, 1):
        q, k = rng.standard_normal((n, n_head, dk)).astype(np.float32), rng.standard_normal((n, n_kv, dk)).astype(np.float32)
        v = rng.standard_normal((n, n_kv, dv)).astype(np.float32)
        got = ops.attention(q, k, v, kv_a, start, scale=0.25)
        np.testing.assert_allclose(got, ref.attention(q, k, v, kv_r, start, scale=0.25), rtol=1e-4, atol=1e-5)
        start += n
        for name in ("k", "v", "k_scale", "v_scale"):
            np.testing.assert_array_equal(getattr(kv_a, name)[:, :start], getattr(kv_r, name)[:, :start], err_msg=name)
    codes, scales = quantize_q8_0(k.transpose(1, 0, 2))
    assert codes.dtype == np.int8 and np.abs(codes).max() == 127
    np.testing.assert_allclose(dequantize_q8_0(codes, scales), k.transpose(1, 0, 2), atol=np.abs(k).max() / 127)
    half = AlloyOps().kv_buffer(700, n_kv, dk, dv)   # float16: 2 bytes a value; q8_0: 1 + 4/32
    assert kv_a.nbytes / kv_a.k.shape[1] == pytest.approx(half.nbytes / half.k.shape[1] * 1.125 / 2)


def test_load_defaults_to_the_compiled_engine(synthetic_model):
    sm = synthetic_model("llama", config=CONFIGS["llama"])
    model, _ = load(sm.path)
    assert isinstance(model.ops, AlloyOps)
    assert isinstance(load(sm.path, engine="reference")[0].ops, ReferenceOps)
    with pytest.raises(ValueError, match="engine 'numpy' is not one of"):
        engine_ops("numpy")


@pytest.fixture
def thread_pools():
    """Put the process's thread pools (BLAS, OpenMP, torch) back as they were after the test."""
    import os

    from threadpoolctl import ThreadpoolController

    import alloy.config

    torch = pytest.importorskip("torch")
    saved = [(lib, lib.num_threads) for lib in ThreadpoolController().lib_controllers]
    torch_threads, alloy_threads, omp = torch.get_num_threads(), alloy.config.get().num_threads, os.environ.get("OMP_NUM_THREADS")
    yield
    for lib, n in saved:
        lib.set_num_threads(n)
    torch.set_num_threads(torch_threads)
    alloy.config.set(num_threads=alloy_threads)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)


def test_bench_cli_rows(synthetic_model, thread_pools):
    sm = synthetic_model("llama", config=CONFIGS["llama"])
    result = CliRunner().invoke(alloy_cli, ["bench", sm.path, "-p", "16", "-n", "4", "-r", "2", "-o", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout[result.stdout.index("["):])
    assert [r["test"] for r in rows] == ["pp16", "tg4"]
    for r in rows:
        assert {"engine", "test", "n_prompt", "n_gen", "tokens_per_second", "std", "device", "model", "quant"} <= set(r)
        assert r["engine"] == "alloy" and r["tokens_per_second"] > 0 and len(r["samples"]) == 2
    table = CliRunner().invoke(alloy_cli, ["bench", sm.path, "-p", "8", "-n", "0", "-r", "1", "--engine", "reference"])
    assert table.exit_code == 0 and "| pp8 " in table.stdout and "reference" in table.stdout
    csv = CliRunner().invoke(alloy_cli, ["bench", sm.path, "-p", "0", "-n", "2", "-r", "1", "-o", "csv"])
    assert csv.exit_code == 0 and csv.stdout.splitlines()[-1].startswith("alloy,tg2,0,2,")


def test_replayed_steps_on_fresh_caches_match_reference(synthetic_model):
    """Replays patch their own rotary tables and positions: a second cache over the same positions (and
    the reference engine, which memoises the same tables) must see unchanged numbers."""
    sm = synthetic_model("qwen3", config=CONFIGS["qwen3"], **MIXES["qwen3"])
    file = GGUFFile(sm.path)
    reference, compiled = model_from_gguf(file, ReferenceOps()), model_from_gguf(file, AlloyOps(kv="f32"))
    for prompt in ([5, 6, 7], [9, 10, 11], [5, 6, 7]):
        cache_r, cache_a = reference.new_cache(8), compiled.new_cache(8)
        expected, got = reference.forward(prompt, cache_r, last_only=True), compiled.forward(prompt, cache_a, last_only=True)
        for step in range(4):
            token = int(np.argmax(expected[-1]))
            expected, got = reference.forward([token], cache_r), compiled.forward([token], cache_a)
            np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max(), rtol=0,
                                       err_msg=f"prompt {prompt}, step {step}")
    graph = compiled.ops._graphs.get(cache_a, {}).get(1)
    assert graph is not None and len(graph.launches) > 10   # the last steps were replays of a captured step
    c = compiled.config
    for position in range(3, 7):
        key = (np.array([position], np.int64).tobytes(), c.rope_dim, float(c.rope_base), float(c.rope_freq_scale), None)
        for memo, fresh in zip(rope_table(*key), rope_table.__wrapped__(*key)):
            np.testing.assert_array_equal(memo, fresh, err_msg=f"memoised rotary table of position {position}")


def test_replayed_draft_verification_matches_reference(synthetic_model):
    """A few tokens at once (a speculative draft's verification) run as a captured step: replays at other
    positions, after the cache was rewound, give the reference engine's logits for every token."""
    sm = synthetic_model("llama", config=CONFIGS["llama"], **MIXES["llama"])
    file = GGUFFile(sm.path)
    reference, compiled = model_from_gguf(file, ReferenceOps()), model_from_gguf(file, AlloyOps(kv="f32"))
    cache_r, cache_a = reference.new_cache(32), compiled.new_cache(32)
    reference.forward([1, 2, 3, 4], cache_r)
    compiled.forward([1, 2, 3, 4], cache_a)
    for draft, keep in (([7, 8, 9], 5), ([3, 1, 4], 6), ([2, 7, 1], 4), ([5, 5, 5], 6)):
        expected, got = reference.forward(draft, cache_r), compiled.forward(draft, cache_a)
        np.testing.assert_allclose(got, expected, atol=1e-4 * np.abs(expected).max(), rtol=0, err_msg=str(draft))
        cache_r.truncate(keep)   # a rejected draft: rewind, so the next replay moves by another delta
        cache_a.truncate(keep)
    graph = compiled.ops._graphs.get(cache_a, {}).get(3)
    assert graph is not None and len(graph.launches) > 10


def test_share_cores_gives_the_cores_to_one_pool(thread_pools):
    import torch
    from threadpoolctl import threadpool_info

    from alloy.serve.threads import share_cores

    assert share_cores("reference", 2) == 2
    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    assert blas and all(p["num_threads"] == 2 for p in blas)
    assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "openmp")
    assert torch.get_num_threads() == 1
    share_cores("alloy")
    assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")


def test_device_choice_is_checked(synthetic_model):
    from alloy.serve.config import ServeConfig

    with pytest.raises(ValueError, match="device 'tpu' is not one of cpu, cuda"):
        ServeConfig(device="tpu")
    with pytest.raises(ValueError, match="reference engine runs on the CPU only"):
        ServeConfig(engine="reference", device="cuda")
    sm = synthetic_model("llama", config=CONFIGS["llama"])
    if not al.cuda_available():
        result = CliRunner().invoke(alloy_cli, ["bench", sm.path, "--device", "cuda", "-p", "8", "-n", "0", "-r", "1"])
        assert result.exit_code == 1 and "needs a CUDA GPU" in result.output


@pytest.mark.parametrize("qtype", [q for q in ALL_TYPES if q in BLOCK_LAYOUTS], ids=lambda q: q.name)
def test_wide_matvec_matches_dequantized(qtype):
    """The GPU's matrix-vector form (several groups a step), checked here on the CPU target; 1,280 columns:
    for 32-element groups, 40 groups, not a multiple of the 8 a step (the masked tail)."""
    from alloy.serve.ops.alloy.matmul_kernels import quant_matvec_wide

    shape = (40, 1280)
    tensor = random_tensor(qtype, shape, seed=2)
    dense = dequantize(tensor.data, qtype, shape)
    ops = AlloyOps()
    w = ops.weight(tensor)
    x = np.random.default_rng(3).standard_normal((2, shape[1])).astype(np.float32)
    y = np.zeros((2, shape[0]), np.float32)
    quant_matvec_wide[(w.scales.shape[1] // w.rows, 2)](
        X=x, **ops._quant_arrays(w), Y=y, M=2, N=shape[0], NP=w.scales.shape[1], K=shape[1],
        **ops._quant_consts(w), GT=8)
    expected = x.astype(np.float64) @ dense.T.astype(np.float64)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_alloy_tune_model_records_blocks_the_engine_reads(synthetic_model, tmp_path, monkeypatch):
    from alloy.serve.ops.alloy.ops import MATMUL_TUNER, matmul_key
    from alloy.tuning import store

    monkeypatch.setattr(store, "user_path", lambda target: tmp_path / f"{target}.json")
    MATMUL_TUNER.forget()
    sm = synthetic_model("llama", config=CONFIGS["llama"], qtype=Q.Q4_0)
    try:
        result = CliRunner().invoke(alloy_cli, ["tune", sm.path])
        assert result.exit_code == 0, result.output
        assert "prefill blocks tuned on" in result.output and "saved to" in result.output
        entries = json.loads((tmp_path / "cpu.json").read_text())["entries"]["engine_quant_matmul"]
        model, _ = load(sm.path)
        weight = model.layers[0].w_down
        key = matmul_key(weight, 256)
        assert key in entries
        MATMUL_TUNER.forget()
        blocks = model.ops._matmul_blocks(weight, 300)
        assert blocks == (entries[key]["config"]["BM"], entries[key]["config"]["BN"])
    finally:
        MATMUL_TUNER.forget()


def test_engine_kernels_cross_compile_for_aarch64(synthetic_model, monkeypatch):
    """Every specialisation a model run launches (prefill, captured and replayed decode, split attention)
    compiles for an Apple Silicon CPU (LLVM's AArch64 back end; nothing runs)."""
    import platform

    import alloy.compiler
    from alloy.runtime.kernel import Kernel
    from alloy.targets.cpu import compile_tile_module

    seen = {}
    real = Kernel.compiled_for

    def record(self, spec, target=None):
        seen.setdefault((self.source_hash, spec.key()), (self.source, spec))
        return real(self, spec, target)

    monkeypatch.setattr(Kernel, "compiled_for", record)
    sm = synthetic_model("gemma3", config=CONFIGS["gemma3"], **MIXES["gemma3"])
    model = model_from_gguf(GGUFFile(sm.path), AlloyOps())
    cache = model.new_cache(600)
    model.forward(list(range(3, 40)), cache)
    for token in (5, 6):
        model.forward([token], cache)
    long_cache = model.new_cache(600)   # past 512 positions of capacity: split decode attention
    model.forward([t % 300 for t in range(520)], long_cache, last_only=True)
    model.forward([7], long_cache)
    monkeypatch.undo()
    assert len(seen) >= 12
    for source, spec in seen.values():
        ctx, module, _ = alloy.compiler.tile_ir(source, spec)
        with ctx:
            art = compile_tile_module(module, cpu_target="aarch64", keep_stages=True,
                                      link=platform.machine() in ("arm64", "aarch64"))
        assert any(op in art.stages["asm"] for op in ("fmla", "fadd", "ldr", "ld1")), art.entry
