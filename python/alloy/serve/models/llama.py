"""Llama (and the families that share its block): pre-norm attention + SwiGLU FFN.

GGUF's converter permutes llama's q/k weights so that rotary embedding rotates
adjacent pairs ("normal" style). Optional q/k/v biases and a ``rope_freqs``
tensor (llama 3.1 frequency factors) are used when the file has them.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import ClassVar

import numpy as np

from ..engine.kv_cache import CacheBatch, KVCache
from ..ops.base import Array, RopeStyle
from .base import Model


class LlamaModel(Model):
    arch = "llama"
    rope_style: ClassVar[RopeStyle] = "normal"

    def _load(self, il: int) -> SimpleNamespace:
        c = self.config
        if il == 0:
            self.rope_freqs = self._optional_vector("rope_freqs.weight", (c.rope_dim // 2,))
        p = f"blk.{il}."
        q_dim, k_dim, v_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim, c.n_head_kv * c.head_dim_v
        layer = SimpleNamespace(
            attn_norm=self._vector(p + "attn_norm.weight", (c.n_embd,)),
            wq=self._weight(p + "attn_q.weight", (q_dim, c.n_embd)),
            wk=self._weight(p + "attn_k.weight", (k_dim, c.n_embd)),
            wv=self._weight(p + "attn_v.weight", (v_dim, c.n_embd)),
            bq=self._optional_vector(p + "attn_q.bias", (q_dim,)),
            bk=self._optional_vector(p + "attn_k.bias", (k_dim,)),
            bv=self._optional_vector(p + "attn_v.bias", (v_dim,)),
            wo=self._weight(p + "attn_output.weight", (c.n_embd, c.n_head * c.head_dim_v)),
            ffn_norm=self._vector(p + "ffn_norm.weight", (c.n_embd,)),
            w_gate=self._weight(p + "ffn_gate.weight", (c.n_ff, c.n_embd)),
            w_up=self._weight(p + "ffn_up.weight", (c.n_ff, c.n_embd)),
            w_down=self._weight(p + "ffn_down.weight", (c.n_embd, c.n_ff)),
        )
        self._load_extra(il, layer)
        layer.wqkv = layer.wqk = None
        if layer.bq is None and layer.bk is None and layer.bv is None:
            layer.wqkv = self.ops.fused_weight([layer.wq, layer.wk, layer.wv])
            if layer.wqkv is None:   # v of another type (Q4_K_M mixes): stack q and k
                layer.wqk = self.ops.fused_weight([layer.wq, layer.wk])
        layer.w_gate_up = self.ops.fused_weight([layer.w_gate, layer.w_up])
        if layer.wqkv is not None:   # the stacked matrix replaces them (no second copy of the weights)
            layer.wq = layer.wk = layer.wv = None
        if layer.wqk is not None:
            layer.wq = layer.wk = None
        if layer.w_gate_up is not None:
            layer.w_gate = layer.w_up = None
        return layer

    def _load_extra(self, il: int, layer: SimpleNamespace) -> None:
        """Architecture-specific additions to a block's weights."""

    def _qk(self, layer: SimpleNamespace, q: Array, k: Array) -> tuple[Array, Array]:
        """Hook between the q/k projections and rope (``[n, heads, head_dim]`` each)."""
        return q, k

    def _attention(self, il: int, h: Array, positions: np.ndarray, cache: KVCache | CacheBatch) -> Array:
        c, ops, layer = self.config, self.ops, self.layers[il]
        n = len(positions)
        dims = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim, c.n_head_kv * c.head_dim_v)
        if layer.wqkv is not None:
            q, k, v = ops.split_columns(ops.matmul(h, layer.wqkv), dims)
        elif layer.wqk is not None:
            q, k = ops.split_columns(ops.matmul(h, layer.wqk), dims[:2])
            v = ops.matmul(h, layer.wv, layer.bv)
        else:
            q, k, v = (ops.matmul(h, layer.wq, layer.bq), ops.matmul(h, layer.wk, layer.bk),
                       ops.matmul(h, layer.wv, layer.bv))
        q = ops.reshape(q, (n, c.n_head, c.head_dim))
        k = ops.reshape(k, (n, c.n_head_kv, c.head_dim))
        v = ops.reshape(v, (n, c.n_head_kv, c.head_dim_v))
        q, k = self._qk(layer, q, k)
        rope = dict(n_rot=c.rope_dim, base=c.rope_base, style=self.rope_style,
                    freq_scale=c.rope_freq_scale, freq_factors=self.rope_freqs)
        q = ops.rope(q, positions, **rope)
        k = ops.rope(k, positions, **rope)
        a = self._attend(il, q, k, v, cache, scale=c.attention_scale, softcap=c.attn_softcap)
        return ops.matmul(ops.reshape(a, (n, c.n_head * c.head_dim_v)), layer.wo)

    def _block(self, il: int, x: Array, positions: np.ndarray, cache: KVCache | CacheBatch) -> Array:
        c, ops, layer = self.config, self.ops, self.layers[il]
        h = ops.rms_norm(x, layer.attn_norm, c.rms_eps)
        x, h = ops.add_rms_norm(x, self._attention(il, h, positions, cache), layer.ffn_norm, c.rms_eps)
        if layer.w_gate_up is not None:
            g = ops.gated_stacked(ops.matmul(h, layer.w_gate_up), "silu")
        else:
            g = ops.gated(ops.matmul(h, layer.w_gate), ops.matmul(h, layer.w_up), "silu")
        return ops.add(x, ops.matmul(g, layer.w_down))
