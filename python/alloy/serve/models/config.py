"""Model hyperparameters, read from GGUF metadata (llama.cpp's key names)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..gguf.errors import GGUFError
from ..gguf.reader import GGUFFile


@dataclass
class ModelConfig:
    """What a forward pass needs to know about a model's shape."""

    arch: str
    name: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    head_dim_v: int
    n_ff: int
    n_vocab: int
    n_ctx_train: int
    rms_eps: float
    rope_base: float = 10000.0
    rope_dim: int = 0                       # rotated features per head (0: head_dim)
    rope_freq_scale: float = 1.0            # 1 / linear scaling factor
    rope_base_swa: float = 10000.0          # rope base of sliding-window layers
    sliding_window: int = 0                 # 0: no sliding-window layers
    swa_layers: tuple[bool, ...] = ()       # per layer: uses the sliding window
    attention_scale: float = 0.0            # 0: 1/sqrt(head_dim)
    attn_softcap: float = 0.0
    final_softcap: float = 0.0

    def __post_init__(self):
        if self.rope_dim == 0:
            self.rope_dim = self.head_dim
        if self.attention_scale == 0.0:
            self.attention_scale = 1.0 / math.sqrt(self.head_dim)
        if not self.swa_layers:
            self.swa_layers = (False,) * self.n_layer

    @classmethod
    def from_gguf(cls, f: GGUFFile) -> "ModelConfig":
        """The architecture-independent part; architectures refine it (see ``Model.config_from_gguf``)."""

        def need_int(suffix: str) -> int:
            return _as_int(f, suffix, f.arch_require(suffix))

        def opt_int(suffix: str, default: int) -> int:
            return _as_int(f, suffix, f.arch_get(suffix, default))

        n_embd = need_int("embedding_length")
        n_head = need_int("attention.head_count")
        head_dim = opt_int("attention.key_length", n_embd // n_head if n_head else 0)
        n_vocab = f.arch_get("vocab_size")
        if n_vocab is None:
            tokens = f.get("tokenizer.ggml.tokens")
            emb = f.tensors.get("token_embd.weight")
            n_vocab = len(tokens) if tokens else (emb.shape[0] if emb is not None else None)
        if n_vocab is None:
            raise GGUFError(f"cannot tell the vocabulary size: no {f.arch}.vocab_size, "
                            "tokenizer.ggml.tokens or token_embd.weight", path=f.path)
        freq_scale = 1.0
        scaling = f.arch_get("rope.scaling.type", "none")
        if scaling == "linear":
            freq_scale = 1.0 / float(f.arch_require("rope.scaling.factor"))
        elif scaling != "none":
            raise GGUFError(f"{f.arch}.rope.scaling.type = {scaling!r} is not supported "
                            "(supported: none, linear)", path=f.path)
        cfg = cls(
            arch=f.arch,
            name=str(f.get("general.name") or f.path.stem),
            n_layer=need_int("block_count"),
            n_embd=n_embd,
            n_head=n_head,
            n_head_kv=opt_int("attention.head_count_kv", n_head),
            head_dim=head_dim,
            head_dim_v=opt_int("attention.value_length", head_dim),
            n_ff=need_int("feed_forward_length"),
            n_vocab=int(n_vocab),
            n_ctx_train=opt_int("context_length", 2048),
            rms_eps=float(f.arch_get("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_base=float(f.arch_get("rope.freq_base", 10000.0)),
            rope_dim=opt_int("rope.dimension_count", head_dim),
            rope_freq_scale=freq_scale,
            rope_base_swa=float(f.arch_get("rope.freq_base_swa", 10000.0)),
            sliding_window=opt_int("attention.sliding_window", 0),
            attention_scale=float(f.arch_get("attention.scale", 0.0)),
            attn_softcap=float(f.arch_get("attn_logit_softcapping", 0.0)),
            final_softcap=float(f.arch_get("final_logit_softcapping", 0.0)),
        )
        cfg.validate(f)
        return cfg

    def validate(self, f: GGUFFile) -> None:
        """Reject shapes no forward pass can run, naming the offending key."""
        checks = [
            (self.n_layer > 0, "block_count", self.n_layer),
            (self.n_embd > 0, "embedding_length", self.n_embd),
            (self.n_head > 0, "attention.head_count", self.n_head),
            (self.n_head_kv > 0 and self.n_head % self.n_head_kv == 0, "attention.head_count_kv", self.n_head_kv),
            (self.head_dim > 0, "attention.key_length", self.head_dim),
            (0 < self.rope_dim <= self.head_dim and self.rope_dim % 2 == 0, "rope.dimension_count", self.rope_dim),
            (self.n_ff > 0, "feed_forward_length", self.n_ff),
            (self.n_vocab > 0, "vocab_size", self.n_vocab),
            (self.sliding_window >= 0, "attention.sliding_window", self.sliding_window),
        ]
        positive = [("attention.layer_norm_rms_epsilon", self.rms_eps), ("rope.freq_base", self.rope_base),
                    ("rope.freq_base_swa", self.rope_base_swa), ("rope.scaling.factor", 1.0 / self.rope_freq_scale
                                                                  if self.rope_freq_scale else 0.0),
                    ("attention.scale", self.attention_scale)]
        checks += [(math.isfinite(value) and value > 0, suffix, value) for suffix, value in positive]
        checks += [(math.isfinite(value) and value >= 0, suffix, value) for suffix, value in
                   (("attn_logit_softcapping", self.attn_softcap), ("final_logit_softcapping", self.final_softcap))]
        for ok, suffix, value in checks:
            if not ok:
                raise GGUFError(f"bad metadata {f.arch}.{suffix} = {value!r}", path=f.path)


def _as_int(f: GGUFFile, suffix: str, value) -> int:
    if isinstance(value, list):  # per-layer arrays: only uniform ones are supported
        if value and all(v == value[0] for v in value):
            value = value[0]
        else:
            raise GGUFError(f"{f.arch}.{suffix} varies per layer ({value[:8]}...), which is not supported",
                            path=f.path)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GGUFError(f"{f.arch}.{suffix} must be an integer, got {value!r}", path=f.path)
    return value
