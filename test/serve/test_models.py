"""Model architectures on tiny synthetic GGUF files, checked against a plain torch
implementation of each architecture written here (float64), and against themselves
(full-sequence forward vs. incremental decode through the KV cache)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType

from alloy.serve.gguf.errors import GGUFError
from alloy.serve.gguf.reader import GGUFFile
from alloy.serve.gguf.testing import SyntheticConfig, write_synthetic_model
from alloy.serve.models import ARCHITECTURES, Gemma3Model, model_from_gguf
from alloy.serve.models import base as model_base

ARCHS = ["llama", "qwen2", "qwen3", "gemma3"]
CONFIGS = {
    "llama": SyntheticConfig(n_layers=2, seed=1),
    "qwen2": SyntheticConfig(n_layers=2, seed=2),
    "qwen3": SyntheticConfig(n_layers=2, seed=3),
    # six layers: five sliding-window layers (rope base 10000) and one global (rope base 1e6)
    "gemma3": SyntheticConfig(n_layers=6, sliding_window=8, rope_base=1e6, seed=4),
}
TOKENS = [5, 17, 42, 99, 3, 250, 7, 7, 64, 128, 33, 301, 12, 8, 77, 190, 2, 45, 46, 47]


# --- an independent torch reference ---------------------------------------------------

def _rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rope_normal(x, pos, base):
    """Adjacent pairs as complex numbers, multiplied by e^{i theta}."""
    d = x.shape[-1]
    theta = pos[:, None].double() * base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rot = torch.polar(torch.ones_like(theta), theta)[:, None, :]
    xc = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
    return torch.view_as_real(xc * rot).reshape(x.shape)


def _rope_neox(x, pos, base):
    """The rotate-half formulation of transformers."""
    d = x.shape[-1]
    theta = pos[:, None].double() * base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    cos = torch.cat([theta.cos(), theta.cos()], -1)[:, None, :]
    sin = torch.cat([theta.sin(), theta.sin()], -1)[:, None, :]
    rotated = torch.cat([-x[..., d // 2:], x[..., : d // 2]], -1)
    return x * cos + rotated * sin


def _attend(q, k, v, scale, window):
    """q [T, H, D], k/v [T, Hkv, D]: causal (and windowed) softmax attention with GQA."""
    t, h, _ = q.shape
    k = k.repeat_interleave(h // k.shape[1], dim=1)
    v = v.repeat_interleave(h // v.shape[1], dim=1)
    scores = torch.einsum("ihd,jhd->hij", q, k) * scale
    i = torch.arange(t)[:, None]
    j = torch.arange(t)[None, :]
    allowed = j <= i
    if window:
        allowed &= (i - j) < window
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.einsum("hij,jhd->ihd", scores.softmax(-1), v).reshape(t, -1)


def torch_forward(arch: str, weights: dict, c: SyntheticConfig, ids: list[int], hidden: bool = False,
                  n_rot: int | None = None):
    W = {k: torch.tensor(v, dtype=torch.float64) for k, v in weights.items()}
    eps, t = c.rms_eps, len(ids)
    pos = torch.arange(t)
    x = W["token_embd.weight"][ids]
    if arch == "gemma3":
        x = x * math.sqrt(c.d_model)
    for i in range(c.n_layers):
        w = {k[len(f"blk.{i}."):]: v for k, v in W.items() if k.startswith(f"blk.{i}.")}
        h = _rms(x, w["attn_norm.weight"], eps)
        q = h @ w["attn_q.weight"].T
        k = h @ w["attn_k.weight"].T
        v = h @ w["attn_v.weight"].T
        if arch == "qwen2":
            q, k, v = q + w["attn_q.bias"], k + w["attn_k.bias"], v + w["attn_v.bias"]
        q = q.reshape(t, c.n_heads, c.head_dim)
        k = k.reshape(t, c.n_kv_heads, c.head_dim)
        v = v.reshape(t, c.n_kv_heads, c.head_dim)
        if arch in ("qwen3", "gemma3"):
            q = _rms(q, w["attn_q_norm.weight"], eps)
            k = _rms(k, w["attn_k_norm.weight"], eps)
        window = 0
        base = c.rope_base
        if arch == "gemma3" and (i + 1) % 6 != 0:      # local layer
            window, base = c.sliding_window, 10000.0
        rope = _rope_normal if arch == "llama" else _rope_neox
        r = n_rot or c.head_dim  # only the first r features of each head rotate
        q = torch.cat([rope(q[..., :r], pos, base), q[..., r:]], -1)
        k = torch.cat([rope(k[..., :r], pos, base), k[..., r:]], -1)
        a = _attend(q, k, v, 1.0 / math.sqrt(c.head_dim), window) @ w["attn_output.weight"].T
        if arch == "gemma3":
            x = x + _rms(a, w["post_attention_norm.weight"], eps)
            h = _rms(x, w["ffn_norm.weight"], eps)
            gate = torch.nn.functional.gelu(h @ w["ffn_gate.weight"].T, approximate="tanh")
            f = (gate * (h @ w["ffn_up.weight"].T)) @ w["ffn_down.weight"].T
            x = x + _rms(f, w["post_ffw_norm.weight"], eps)
        else:
            x = x + a
            h = _rms(x, w["ffn_norm.weight"], eps)
            gate = torch.nn.functional.silu(h @ w["ffn_gate.weight"].T)
            x = x + (gate * (h @ w["ffn_up.weight"].T)) @ w["ffn_down.weight"].T
    x = _rms(x, W["output_norm.weight"], eps)
    if hidden:
        return x.numpy()
    out = W.get("output.weight", W["token_embd.weight"])
    return (x @ out.T).numpy()


def assert_close(actual, expected, rel=1e-4):
    scale = np.max(np.abs(expected))
    err = np.max(np.abs(np.asarray(actual, np.float64) - expected))
    assert err <= rel * scale, f"max error {err:.3g} exceeds {rel} x {scale:.3g}"


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture(scope="module", params=ARCHS)
def synthetic(request, tmp_path_factory):
    arch = request.param
    path = tmp_path_factory.mktemp(arch) / f"{arch}.gguf"
    sm = write_synthetic_model(path, arch, CONFIGS[arch], tied_embeddings=arch != "llama")
    return sm, model_from_gguf(GGUFFile(path))


# --- tests ------------------------------------------------------------------------------

def test_registry_covers_the_architectures():
    assert sorted(ARCHITECTURES) == sorted(ARCHS)


def test_full_forward_matches_torch(synthetic):
    sm, model = synthetic
    logits = model.forward(TOKENS, model.new_cache(64))
    assert logits.shape == (len(TOKENS), len(sm.tokens)) and logits.dtype == np.float32
    assert_close(logits, torch_forward(sm.arch, sm.weights, sm.config, TOKENS))


def test_incremental_decode_matches_full_forward(synthetic):
    sm, model = synthetic
    full = model.forward(TOKENS, model.new_cache(64))
    cache = model.new_cache(64)
    steps = [model.forward(TOKENS[:5], cache)]
    steps += [model.forward([t], cache) for t in TOKENS[5:]]
    assert cache.length == len(TOKENS)
    assert_close(np.concatenate(steps), full, rel=1e-5)


def test_chunked_prefill_and_last_only(synthetic, monkeypatch):
    sm, model = synthetic
    full = model.forward(TOKENS, model.new_cache(64))
    monkeypatch.setattr(model_base, "PREFILL_CHUNK", 6)
    assert_close(model.forward(TOKENS, model.new_cache(64)), full, rel=1e-5)
    last = model.forward(TOKENS, model.new_cache(64), last_only=True)
    assert last.shape == (1, full.shape[1])
    assert_close(last, full[-1:], rel=1e-5)


def test_hidden_states_match_torch(synthetic):
    sm, model = synthetic
    h = model.hidden_states(TOKENS[:9])
    assert h.shape == (9, sm.config.d_model)
    assert_close(h, torch_forward(sm.arch, sm.weights, sm.config, TOKENS[:9], hidden=True))


def test_truncate_reuses_a_prefix(synthetic):
    sm, model = synthetic
    cache = model.new_cache(64)
    model.forward(TOKENS, cache)
    assert cache.tokens == TOKENS and cache.common_prefix(TOKENS[:7] + [1, 2]) == 7
    cache.truncate(7)
    assert cache.tokens == TOKENS[:7]
    other = [11, 12, 13, 14]
    resumed = model.forward(other, cache)
    fresh = model.forward(TOKENS[:7] + other, model.new_cache(64))[7:]
    assert_close(resumed, fresh, rel=1e-5)


def test_cache_grows_past_its_first_allocation(synthetic):
    sm, model = synthetic
    ids = (TOKENS * 20)[:300]
    cache = model.new_cache(300)
    a = model.forward(ids[:290], cache, last_only=True)
    b = model.forward(ids[290:], cache)
    c = model.forward(ids, model.new_cache(300))
    assert_close(np.concatenate([a, b]), np.concatenate([c[289:290], c[290:]]), rel=1e-5)


def test_bad_inputs_are_rejected(synthetic):
    sm, model = synthetic
    cache = model.new_cache(8)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model.forward([len(sm.tokens)], cache)
    with pytest.raises(ValueError, match="do not fit the KV cache"):
        model.forward(list(range(9)), cache)
    with pytest.raises(ValueError, match="at least one token"):
        model.forward([], cache)
    assert cache.length == 0
    with pytest.raises(ValueError, match="truncate"):
        cache.truncate(3)


def test_gemma3_layer_pattern_and_scale(tmp_path):
    sm = write_synthetic_model(tmp_path / "g.gguf", "gemma3", CONFIGS["gemma3"])
    model = model_from_gguf(GGUFFile(sm.path))
    assert model.config.swa_layers == (True, True, True, True, True, False)
    assert model.config.attention_scale == pytest.approx(1 / math.sqrt(sm.config.head_dim))
    assert model.config.rope_base == pytest.approx(1e6) and model.config.rope_base_swa == 10000.0


def test_quantized_weights_match_torch(tmp_path):
    path = tmp_path / "q.gguf"
    sm = write_synthetic_model(path, "qwen3", SyntheticConfig(seed=7), qtype=GGMLQuantizationType.Q8_0,
                               qtype_for={"ffn_down.weight": GGMLQuantizationType.Q5_0})
    model = model_from_gguf(GGUFFile(path))
    assert_close(model.forward(TOKENS, model.new_cache(32)), torch_forward("qwen3", sm.weights, sm.config, TOKENS))


def test_missing_tensor_is_named(tmp_path):
    path = tmp_path / "broken.gguf"
    write_synthetic_model(path, "gemma3", skip_tensors=("blk.1.post_ffw_norm.weight",))
    with pytest.raises(GGUFError, match="blk.1.post_ffw_norm.weight"):
        Gemma3Model.from_gguf(GGUFFile(path))


def test_unsupported_rope_scaling_is_rejected(tmp_path):
    path = tmp_path / "yarn.gguf"
    write_synthetic_model(path, "llama", metadata={"llama.rope.scaling.type": "yarn"})
    with pytest.raises(GGUFError, match="rope.scaling.type"):
        model_from_gguf(GGUFFile(path))


@pytest.mark.parametrize("pattern,expected", [
    (3, (True, True, False, True, True, False)),
    ([False, True, True, False, True, True], (False, True, True, False, True, True)),
])
def test_gemma3_sliding_window_pattern_metadata(tmp_path, pattern, expected):
    sm = write_synthetic_model(tmp_path / "g.gguf", "gemma3", CONFIGS["gemma3"],
                               metadata={"gemma3.attention.sliding_window_pattern": pattern})
    assert model_from_gguf(GGUFFile(sm.path)).config.swa_layers == expected


def test_gemma3_bad_sliding_window_pattern(tmp_path):
    sm = write_synthetic_model(tmp_path / "g.gguf", "gemma3", CONFIGS["gemma3"],
                               metadata={"gemma3.attention.sliding_window_pattern": [True, False]})
    with pytest.raises(GGUFError, match="sliding_window_pattern"):
        model_from_gguf(GGUFFile(sm.path))


def test_final_logit_softcapping(tmp_path):
    sm = write_synthetic_model(tmp_path / "g.gguf", "gemma3", CONFIGS["gemma3"],
                               metadata={"gemma3.final_logit_softcapping": np.float32(3.0)})
    model = model_from_gguf(GGUFFile(sm.path))
    expected = 3.0 * np.tanh(torch_forward("gemma3", sm.weights, sm.config, TOKENS) / 3.0)
    assert_close(model.forward(TOKENS, model.new_cache(32)), expected)


def test_partial_rotary_llama(tmp_path):
    sm = write_synthetic_model(tmp_path / "l.gguf", "llama", CONFIGS["llama"],
                               metadata={"llama.rope.dimension_count": 8})
    model = model_from_gguf(GGUFFile(sm.path))
    assert model.config.rope_dim == 8
    assert_close(model.forward(TOKENS, model.new_cache(32)),
                 torch_forward("llama", sm.weights, sm.config, TOKENS, n_rot=8))
