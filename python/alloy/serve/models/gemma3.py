"""Gemma 3: sandwich RMSNorms, per-head q/k RMSNorm, GELU-gated FFN, interleaved
sliding-window ("local") and global attention layers with their own rope bases.

GGUF's converter has already added 1 to Gemma's norm weights, so they are used
as stored. Embeddings are scaled by sqrt(n_embd) and tied to the output head.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from ..engine.kv_cache import CacheBatch, KVCache
from ..gguf.errors import GGUFError
from ..gguf.reader import GGUFFile
from ..ops.base import Array
from .base import Model
from .config import ModelConfig

SWA_PATTERN = 6
"""Default: of every 6 layers, the first 5 use the sliding window and the 6th is global."""


class Gemma3Model(Model):
    arch = "gemma3"

    @classmethod
    def config_from_gguf(cls, file: GGUFFile) -> ModelConfig:
        cfg = ModelConfig.from_gguf(file)
        if cfg.sliding_window > 0:
            pattern = file.arch_get("attention.sliding_window_pattern", SWA_PATTERN)
            if isinstance(pattern, list):
                if len(pattern) != cfg.n_layer:
                    raise GGUFError(f"gemma3.attention.sliding_window_pattern has {len(pattern)} entries "
                                    f"for {cfg.n_layer} layers", path=file.path)
                cfg.swa_layers = tuple(bool(p) for p in pattern)
            elif isinstance(pattern, int) and not isinstance(pattern, bool) and pattern >= 0:
                cfg.swa_layers = tuple(pattern == 0 or il % pattern < pattern - 1 for il in range(cfg.n_layer))
            else:
                raise GGUFError(f"bad gemma3.attention.sliding_window_pattern {pattern!r}", path=file.path)
        if file.arch_get("attention.scale") is None:
            # the 27B model scales queries by 1/sqrt(n_embd / n_head), the others by 1/sqrt(head_dim)
            width = cfg.n_embd // cfg.n_head if cfg.n_layer == 62 else cfg.head_dim
            cfg.attention_scale = 1.0 / math.sqrt(width)
        return cfg

    def _load(self, il: int) -> SimpleNamespace:
        c = self.config
        p = f"blk.{il}."
        layer = SimpleNamespace(
            attn_norm=self._vector(p + "attn_norm.weight", (c.n_embd,)),
            wq=self._weight(p + "attn_q.weight", (c.n_head * c.head_dim, c.n_embd)),
            wk=self._weight(p + "attn_k.weight", (c.n_head_kv * c.head_dim, c.n_embd)),
            wv=self._weight(p + "attn_v.weight", (c.n_head_kv * c.head_dim_v, c.n_embd)),
            q_norm=self._vector(p + "attn_q_norm.weight", (c.head_dim,)),
            k_norm=self._vector(p + "attn_k_norm.weight", (c.head_dim,)),
            wo=self._weight(p + "attn_output.weight", (c.n_embd, c.n_head * c.head_dim_v)),
            post_attn_norm=self._vector(p + "post_attention_norm.weight", (c.n_embd,)),
            ffn_norm=self._vector(p + "ffn_norm.weight", (c.n_embd,)),
            w_gate=self._weight(p + "ffn_gate.weight", (c.n_ff, c.n_embd)),
            w_up=self._weight(p + "ffn_up.weight", (c.n_ff, c.n_embd)),
            w_down=self._weight(p + "ffn_down.weight", (c.n_embd, c.n_ff)),
            post_ffn_norm=self._vector(p + "post_ffw_norm.weight", (c.n_embd,)),
        )
        layer.w_gate_up = self.ops.fused_weight([layer.w_gate, layer.w_up])
        if layer.w_gate_up is not None:   # the stacked matrix replaces them
            layer.w_gate = layer.w_up = None
        layer.wqk = self.ops.fused_weight([layer.wq, layer.wk])
        if layer.wqk is not None:
            layer.wq = layer.wk = None
        return layer

    def _embed(self, tokens) -> Array:
        return self.ops.scale(super()._embed(tokens), math.sqrt(self.config.n_embd))

    def _block(self, il: int, x: Array, positions: np.ndarray, cache: KVCache | CacheBatch) -> Array:
        c, ops, layer = self.config, self.ops, self.layers[il]
        n, eps = len(positions), c.rms_eps
        local = c.swa_layers[il]

        h = ops.rms_norm(x, layer.attn_norm, eps)
        if layer.wqk is not None:
            q, k = ops.split_columns(ops.matmul(h, layer.wqk), (c.n_head * c.head_dim, c.n_head_kv * c.head_dim))
        else:
            q, k = ops.matmul(h, layer.wq), ops.matmul(h, layer.wk)
        q = ops.reshape(q, (n, c.n_head, c.head_dim))
        k = ops.reshape(k, (n, c.n_head_kv, c.head_dim))
        v = ops.reshape(ops.matmul(h, layer.wv), (n, c.n_head_kv, c.head_dim_v))
        q = ops.rms_norm(q, layer.q_norm, eps)
        k = ops.rms_norm(k, layer.k_norm, eps)
        rope = dict(n_rot=c.rope_dim, style="neox",
                    base=c.rope_base_swa if local else c.rope_base,
                    freq_scale=1.0 if local else c.rope_freq_scale)
        q = ops.scale(ops.rope(q, positions, **rope), c.attention_scale)
        k = ops.rope(k, positions, **rope)
        a = self._attend(il, q, k, v, cache, scale=1.0, window=c.sliding_window if local else 0,
                         softcap=c.attn_softcap)
        a = ops.matmul(ops.reshape(a, (n, c.n_head * c.head_dim_v)), layer.wo)
        x, h = ops.add_rms_norm(x, a, layer.ffn_norm, eps, y_norm=layer.post_attn_norm)
        if layer.w_gate_up is not None:
            g = ops.gated_stacked(ops.matmul(h, layer.w_gate_up), "gelu")
        else:
            g = ops.gated(ops.matmul(h, layer.w_gate), ops.matmul(h, layer.w_up), "gelu")
        f = ops.matmul(g, layer.w_down)
        return ops.add(x, ops.rms_norm(f, layer.post_ffn_norm, eps))
