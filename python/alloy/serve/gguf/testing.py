"""Write tiny synthetic GGUF models for tests (random weights, a small byte-level BPE vocab).

``write_synthetic_model(path, "qwen3")`` writes every tensor and metadata key the
architecture needs with small dimensions and returns the float32 weights as
stored (after quantization), so a reference forward pass can be checked against
the file. Uses gguf-py's writer and the ``tokenizers`` BPE trainer.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter
from gguf import quants as gguf_quants

from . import codecs

__all__ = ["SyntheticConfig", "SyntheticModel", "write_synthetic_model", "CHATML_TEMPLATE",
           "SPECIAL_TOKENS"]

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "The quick brown fox jumps over the lazy dog. Hello world! hello, world?",
    "def add(x, y):\n    return x + y\n",
    "Alloy compiles tiles of numbers: 0123456789, 3.14159; {\"key\": [1, 2, 3]}",
    "She sells sea shells by the sea shore. Über naïve café – ☃ 日本語",
]


@dataclass(frozen=True)
class SyntheticConfig:
    """Small model dimensions; ``head_dim`` is independent of ``d_model`` (as in gemma3/qwen3)."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int = 16
    d_ff: int = 128
    context_length: int = 128
    rope_base: float = 10000.0
    rms_eps: float = 1e-6
    sliding_window: int = 16     # gemma3 only
    vocab_size: int = 384        # target size of the trained BPE vocabulary
    seed: int = 0


@dataclass
class SyntheticModel:
    path: str
    arch: str
    config: SyntheticConfig
    weights: dict[str, np.ndarray]            # float32 values exactly as decoded from the file
    tokens: list[str]
    merges: list[str]
    metadata: dict[str, object] = field(default_factory=dict)  # the keys written (plain values)


def _bpe_vocab(size: int) -> tuple[list[str], list[str]]:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_CORPUS * 4, trainer)
    model = json.loads(tok.to_str())["model"]
    tokens = [t for t, _ in sorted(model["vocab"].items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, merges


def _tensor_shapes(arch: str, c: SyntheticConfig, n_vocab: int, tied: bool) -> dict[str, tuple[int, ...]]:
    """Tensor names and numpy shapes ((n_out, n_in) for matrices)."""
    q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (n_vocab, c.d_model),
                                          "output_norm.weight": (c.d_model,)}
    if not tied:
        shapes["output.weight"] = (n_vocab, c.d_model)
    for i in range(c.n_layers):
        b = f"blk.{i}."
        shapes.update({
            b + "attn_norm.weight": (c.d_model,),
            b + "attn_q.weight": (q, c.d_model),
            b + "attn_k.weight": (kv, c.d_model),
            b + "attn_v.weight": (kv, c.d_model),
            b + "attn_output.weight": (c.d_model, q),
            b + "ffn_norm.weight": (c.d_model,),
            b + "ffn_gate.weight": (c.d_ff, c.d_model),
            b + "ffn_up.weight": (c.d_ff, c.d_model),
            b + "ffn_down.weight": (c.d_model, c.d_ff),
        })
        if arch == "qwen2":
            shapes.update({b + "attn_q.bias": (q,), b + "attn_k.bias": (kv,), b + "attn_v.bias": (kv,)})
        if arch in ("qwen3", "gemma3"):
            shapes.update({b + "attn_q_norm.weight": (c.head_dim,), b + "attn_k_norm.weight": (c.head_dim,)})
        if arch == "gemma3":
            shapes.update({b + "post_attention_norm.weight": (c.d_model,),
                           b + "post_ffw_norm.weight": (c.d_model,)})
    return shapes


def _arch_metadata(arch: str, c: SyntheticConfig, n_vocab: int) -> dict[str, object]:
    a = arch
    md: dict[str, object] = {
        f"{a}.context_length": c.context_length,
        f"{a}.embedding_length": c.d_model,
        f"{a}.block_count": c.n_layers,
        f"{a}.feed_forward_length": c.d_ff,
        f"{a}.attention.head_count": c.n_heads,
        f"{a}.attention.head_count_kv": c.n_kv_heads,
        f"{a}.attention.layer_norm_rms_epsilon": np.float32(c.rms_eps),
        f"{a}.rope.freq_base": np.float32(c.rope_base),
    }
    if arch == "llama":
        md[f"{a}.rope.dimension_count"] = c.head_dim
        md[f"{a}.vocab_size"] = n_vocab
    if arch in ("qwen3", "gemma3") or c.head_dim * c.n_heads != c.d_model:
        md[f"{a}.attention.key_length"] = c.head_dim
        md[f"{a}.attention.value_length"] = c.head_dim
    if arch == "gemma3":
        md[f"{a}.attention.sliding_window"] = c.sliding_window
    return md


def _random_weight(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if len(shape) == 1:
        if name.endswith(".bias"):
            return (0.1 * rng.standard_normal(shape)).astype(np.float32)
        return (1.0 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
    scale = 1.0 if name == "token_embd.weight" else 1.0 / np.sqrt(shape[-1])
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _encode(x: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    if qtype == GGMLQuantizationType.F32:
        return x
    if qtype in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0):
        return codecs.quantize(x, qtype)
    return np.ascontiguousarray(gguf_quants.quantize(x, qtype)).view(np.uint8)   # (rows, row bytes)


def _put(w: GGUFWriter, key: str, value) -> None:
    if isinstance(value, tuple):                 # (value, GGUFValueType) pins the type
        value, vtype = value
        w.add_key_value(key, value, vtype, sub_type=None)
    elif isinstance(value, (bool, np.bool_)):
        w.add_bool(key, bool(value))
    elif isinstance(value, np.float32):
        w.add_float32(key, float(value))
    elif isinstance(value, float):
        w.add_float32(key, value)
    elif isinstance(value, (int, np.integer)):
        value = int(value)
        (w.add_uint32 if 0 <= value < 2**32 else w.add_int64)(key, value)
    elif isinstance(value, str):
        w.add_key_value(key, value, GGUFValueType.STRING)
    elif isinstance(value, (list, np.ndarray)):
        w.add_key_value(key, np.asarray(value).tolist() if isinstance(value, np.ndarray) else list(value),
                        GGUFValueType.ARRAY)
    else:
        raise TypeError(f"cannot write metadata {key!r} of type {type(value).__name__}")


def write_synthetic_model(
    path: str | os.PathLike,
    arch: str = "llama",
    config: SyntheticConfig | None = None,
    *,
    qtype: GGMLQuantizationType | int = GGMLQuantizationType.F32,
    qtype_for: Mapping[str, GGMLQuantizationType | int] | None = None,
    tied_embeddings: bool = True,
    chat_template: str | None = CHATML_TEMPLATE,
    metadata: Mapping[str, object] | None = None,
    skip_tensors: tuple[str, ...] = (),
) -> SyntheticModel:
    """Write a complete tiny ``arch`` model (llama, qwen2, qwen3 or gemma3) to ``path``.

    ``qtype`` is the type of every matrix (vectors stay F32); ``qtype_for`` maps a
    tensor-name suffix (e.g. ``"ffn_down.weight"``) to its own type. Matrix row
    lengths (d_model, d_ff, n_heads*head_dim) must be multiples of the block size.
    ``metadata`` adds or replaces keys (``None`` deletes one; a ``(value,
    GGUFValueType)`` pair pins a type); ``skip_tensors`` omits tensors by name.
    """
    if arch not in ("llama", "qwen2", "qwen3", "gemma3"):
        raise ValueError(f"no synthetic model for architecture {arch!r}")
    c = config or SyntheticConfig()
    rng = np.random.default_rng(c.seed)
    tokens, merges = _bpe_vocab(c.vocab_size)
    n_vocab = len(tokens)

    md: dict[str, object] = {
        "general.name": f"synthetic-{arch}",
        **_arch_metadata(arch, c, n_vocab),
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "gpt-2",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.token_type": [3] * len(SPECIAL_TOKENS) + [1] * (n_vocab - len(SPECIAL_TOKENS)),
        "tokenizer.ggml.merges": merges,
        "tokenizer.ggml.bos_token_id": SPECIAL_TOKENS.index("<|endoftext|>"),
        "tokenizer.ggml.eos_token_id": SPECIAL_TOKENS.index("<|im_end|>"),
        "tokenizer.ggml.padding_token_id": SPECIAL_TOKENS.index("<|endoftext|>"),
        "tokenizer.ggml.add_bos_token": False,
    }
    if chat_template:
        md["tokenizer.chat_template"] = chat_template
    for key, value in (metadata or {}).items():
        if value is None:
            md.pop(key, None)
        else:
            md[key] = value

    writer = GGUFWriter(os.fspath(path), arch)
    for key, value in md.items():
        _put(writer, key, value)
    weights: dict[str, np.ndarray] = {}
    for name, shape in _tensor_shapes(arch, c, n_vocab, tied_embeddings).items():
        x = _random_weight(name, shape, rng)
        if name in skip_tensors:
            continue
        q = GGMLQuantizationType.F32
        if len(shape) == 2:
            q = GGMLQuantizationType(qtype)
            for suffix, t in (qtype_for or {}).items():
                if name.endswith(suffix):
                    q = GGMLQuantizationType(t)
        raw = _encode(x, q)
        writer.add_tensor(name, raw, raw_dtype=None if q == GGMLQuantizationType.F32 else q)
        weights[name] = x if q == GGMLQuantizationType.F32 else codecs.dequantize(raw, q, shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    plain = {k: (v[0] if isinstance(v, tuple) else v) for k, v in md.items()}
    return SyntheticModel(os.fspath(path), arch, c, weights, tokens, merges,
                          {"general.architecture": arch, **plain})
