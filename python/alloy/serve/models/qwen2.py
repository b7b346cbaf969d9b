"""Qwen2: the llama block with q/k/v biases and neox-style (half-split) rotary embedding."""
from __future__ import annotations

from .llama import LlamaModel


class Qwen2Model(LlamaModel):
    arch = "qwen2"
    rope_style = "neox"

    def _load_extra(self, il, layer):
        if layer.bq is None or layer.bk is None or layer.bv is None:
            c, p = self.config, f"blk.{il}."  # required here: load them through the checked path
            layer.bq = self._vector(p + "attn_q.bias", (c.n_head * c.head_dim,))
            layer.bk = self._vector(p + "attn_k.bias", (c.n_head_kv * c.head_dim,))
            layer.bv = self._vector(p + "attn_v.bias", (c.n_head_kv * c.head_dim_v,))
