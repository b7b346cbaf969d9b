"""Qwen3: the llama block without biases, with per-head RMSNorm of q and k before
neox-style rotary embedding."""
from __future__ import annotations

from .llama import LlamaModel


class Qwen3Model(LlamaModel):
    arch = "qwen3"
    rope_style = "neox"

    def _load_extra(self, il, layer):
        c, p = self.config, f"blk.{il}."
        layer.q_norm = self._vector(p + "attn_q_norm.weight", (c.head_dim,))
        layer.k_norm = self._vector(p + "attn_k_norm.weight", (c.head_dim,))

    def _qk(self, layer, q, k):
        eps = self.config.rms_eps
        return self.ops.rms_norm(q, layer.q_norm, eps), self.ops.rms_norm(k, layer.k_norm, eps)
