"""The numpy reference ops against torch (float64), op by op."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from alloy.serve.ops import ReferenceOps

OPS = ReferenceOps()
RNG = np.random.default_rng(0)


def _rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_elementwise_and_norms():
    x, w, b = _rand(5, 48), _rand(48), _rand(48)
    tx = _t(x)
    np.testing.assert_allclose(OPS.gelu(x), torch.nn.functional.gelu(tx, approximate="tanh"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(OPS.silu(x), torch.nn.functional.silu(tx), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(OPS.softmax(x), torch.softmax(tx, -1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(OPS.softcap(x, 2.0), 2.0 * torch.tanh(tx / 2.0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(OPS.layer_norm(x, w, b, 1e-5),
                               torch.nn.functional.layer_norm(tx, (48,), _t(w), _t(b), 1e-5), rtol=1e-4, atol=1e-5)
    rms = tx * torch.rsqrt(tx.pow(2).mean(-1, keepdim=True) + 1e-6) * _t(w)
    np.testing.assert_allclose(OPS.rms_norm(x, w, 1e-6), rms, rtol=1e-4, atol=1e-5)


def test_matmul_with_bias():
    x, w, b = _rand(3, 32), _rand(10, 32), _rand(10)
    np.testing.assert_allclose(OPS.matmul(x, w, b), _t(x) @ _t(w).T + _t(b), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("style", ["normal", "neox"])
def test_partial_rope_with_scale_and_factors(style):
    n, heads, hd, n_rot, base = 6, 3, 16, 8, 500.0
    x = _rand(n, heads, hd)
    pos = np.array([0, 1, 2, 7, 30, 31])
    factors = np.array([1.0, 2.0, 4.0, 8.0], np.float32)
    out = OPS.rope(x, pos, n_rot=n_rot, base=base, style=style, freq_scale=0.5, freq_factors=factors)
    theta = _t(pos)[:, None] * 0.5 * base ** (-torch.arange(0, n_rot, 2, dtype=torch.float64) / n_rot) / _t(factors)
    c, s = theta.cos()[:, None, :], theta.sin()[:, None, :]
    tx = _t(x)
    if style == "normal":
        a, b = tx[..., 0:n_rot:2], tx[..., 1:n_rot:2]
        rot = torch.stack([a * c - b * s, a * s + b * c], -1).reshape(n, heads, n_rot)
    else:
        a, b = tx[..., : n_rot // 2], tx[..., n_rot // 2:n_rot]
        rot = torch.cat([a * c - b * s, a * s + b * c], -1)
    expected = torch.cat([rot, tx[..., n_rot:]], -1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("window,softcap", [(0, 0.0), (5, 0.0), (0, 3.0), (4, 2.0)])
def test_attention_in_pieces_matches_torch(window, softcap):
    t, h, hkv, dk, dv = 13, 6, 2, 8, 12
    q, k, v = _rand(t, h, dk), _rand(t, hkv, dk), _rand(t, hkv, dv)
    scale = 1 / math.sqrt(dk)
    kv = OPS.kv_buffer(64, hkv, dk, dv)
    parts, start = [], 0
    for n in (4, 1, 1, 7):  # a prefill chunk, two decode steps, another chunk
        s = slice(start, start + n)
        parts.append(OPS.attention(q[s], k[s], v[s], kv, start, scale=scale, window=window, softcap=softcap))
        start += n
    got = np.concatenate(parts)

    tq, tk, tv = _t(q), _t(k).repeat_interleave(h // hkv, 1), _t(v).repeat_interleave(h // hkv, 1)
    scores = torch.einsum("ihd,jhd->hij", tq, tk) * scale
    if softcap:
        scores = softcap * torch.tanh(scores / softcap)
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    allowed = (j <= i) & (((i - j) < window) if window else True)
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    expected = torch.einsum("hij,jhd->ihd", probs, tv)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_kv_buffer_limits():
    kv = OPS.kv_buffer(4, 1, 4, 4)
    x = _rand(5, 1, 4)
    with pytest.raises(ValueError, match="holds 4 tokens"):
        OPS.attention(x, x, x, kv, 0, scale=1.0)


def test_embedding_rejects_bad_ids():
    table = _rand(10, 4)
    np.testing.assert_array_equal(OPS.embedding(table, [3, 0, 9]), table[[3, 0, 9]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        OPS.embedding(table, [10])
