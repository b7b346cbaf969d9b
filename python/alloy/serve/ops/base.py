"""The op interface that model architectures are written against.

A model's forward pass calls only these methods, on arrays the backend
created, so the numpy reference (``reference.py``) can be replaced by compiled
kernels without touching ``models/``. Arrays are row-major; activations are
``[n_tokens, features]`` or, around attention, ``[n_tokens, heads, head_dim]``.
Weights follow GGUF's numpy order: ``(n_out, n_in)``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, Literal, Protocol, Sequence

import numpy as np

Array = Any
"""A backend array (``numpy.ndarray`` for the reference ops)."""

RopeStyle = Literal["normal", "neox"]
"""``normal``: rotate adjacent pairs (x[2i], x[2i+1]) — llama.cpp's LLAMA_ROPE_TYPE_NORM.
``neox``: rotate halves (x[i], x[i + n_rot/2]) — LLAMA_ROPE_TYPE_NEOX."""


class TensorLike(Protocol):
    """A GGUF tensor: what ``GGUFFile.tensors`` holds."""

    name: str
    shape: tuple[int, ...]
    qtype: Any
    data: np.ndarray


class KVBuffer(ABC):
    """One layer's key/value storage, made by :meth:`Ops.kv_buffer`.

    Positions ``[0, capacity)`` can be written; what lies beyond the cache's
    length is garbage that the next write overwrites.
    """

    max_tokens: int


class Ops(ABC):
    """Numerical operations of a decoder-only transformer."""

    batched_decode: bool = False
    """Whether one forward pass over B sequences' tokens (``Model.decode_batch``) beats B single-token
    steps: the serving engine batches decoding only then."""

    # --- parameters ---------------------------------------------------------
    @abstractmethod
    def weight(self, tensor: TensorLike) -> Array:
        """A 2-D matmul / embedding weight ``(n_out, n_in)``, possibly kept quantized."""

    @abstractmethod
    def vector(self, tensor: TensorLike | np.ndarray) -> Array:
        """A small float32 parameter (norm weight, bias) as a backend array."""

    @abstractmethod
    def kv_buffer(self, max_tokens: int, n_head_kv: int, head_dim_k: int, head_dim_v: int) -> KVBuffer:
        """Empty key/value storage for one layer, for up to ``max_tokens`` positions."""

    # --- data movement ------------------------------------------------------
    @abstractmethod
    def embedding(self, table: Array, ids: Sequence[int]) -> Array:
        """Rows ``ids`` of the weight ``table`` as float32 ``[len(ids), n_in]``."""

    @abstractmethod
    def reshape(self, x: Array, shape: tuple[int, ...]) -> Array:
        """``x`` viewed with a new shape (same element order)."""

    @abstractmethod
    def take_rows(self, x: Array, rows: slice) -> Array:
        """Rows ``rows`` of ``x`` along the first axis."""

    def concat_rows(self, parts: Sequence[Array]) -> Array:
        """``parts`` stacked along the first axis (the rows of a batch's sequences, back together)."""
        return np.concatenate(list(parts))

    @abstractmethod
    def to_numpy(self, x: Array) -> np.ndarray:
        """``x`` as a float32 numpy array on the host."""

    # --- linear algebra -----------------------------------------------------
    @abstractmethod
    def matmul(self, x: Array, w: Array, bias: Array | None = None) -> Array:
        """``x @ w.T (+ bias)``: ``[n, n_in] x (n_out, n_in) -> [n, n_out]``."""

    # --- elementwise and reductions -------------------------------------------
    @abstractmethod
    def add(self, a: Array, b: Array) -> Array:
        """``a + b`` (broadcasting)."""

    @abstractmethod
    def mul(self, a: Array, b: Array) -> Array:
        """``a * b`` (broadcasting)."""

    @abstractmethod
    def scale(self, x: Array, s: float) -> Array:
        """``x * s`` for a Python scalar ``s``."""

    @abstractmethod
    def softcap(self, x: Array, cap: float) -> Array:
        """``cap * tanh(x / cap)``."""

    @abstractmethod
    def rms_norm(self, x: Array, w: Array | None, eps: float) -> Array:
        """``x / sqrt(mean(x**2, -1) + eps) * w`` over the last axis."""

    @abstractmethod
    def layer_norm(self, x: Array, w: Array | None, b: Array | None, eps: float) -> Array:
        """``(x - mean) / sqrt(var + eps) * w + b`` over the last axis."""

    @abstractmethod
    def gelu(self, x: Array) -> Array:
        """GELU, tanh approximation."""

    @abstractmethod
    def silu(self, x: Array) -> Array:
        """``x * sigmoid(x)``."""

    @abstractmethod
    def softmax(self, x: Array) -> Array:
        """Softmax over the last axis."""

    # --- fused forms (defaults compose the ops above; a backend may fuse them) -------
    def fused_weight(self, weights: Sequence[Array]) -> Array | None:
        """The weights' rows stacked into one matrix (``q|k|v``, ``gate|up``: one product instead of
        several), or None when this backend does not fuse them (the default)."""
        return None

    def split_columns(self, x: Array, sizes: Sequence[int]) -> list[Array]:
        """``x [n, sum(sizes)]`` cut into column blocks ``[n, size]``."""
        out, start = [], 0
        for size in sizes:
            out.append(np.ascontiguousarray(self.to_numpy(x)[:, start:start + size]))
            start += size
        return out

    def gated(self, gate: Array, up: Array, act: Literal["silu", "gelu"]) -> Array:
        """``act(gate) * up`` (SwiGLU / GeGLU)."""
        return self.mul(self.silu(gate) if act == "silu" else self.gelu(gate), up)

    def gated_stacked(self, gate_up: Array, act: Literal["silu", "gelu"]) -> Array:
        """``act(g) * u`` of ``gate_up [n, 2f]`` = ``[g | u]`` (the output of a fused gate/up product)."""
        gate, up = self.split_columns(gate_up, [gate_up.shape[-1] // 2] * 2)
        return self.gated(gate, up, act)

    def add_rms_norm(self, x: Array, y: Array, w: Array | None, eps: float,
                     y_norm: Array | None = None) -> tuple[Array, Array]:
        """The residual step ``s = x + y`` (``y`` first RMS-normed by ``y_norm`` when given, as in
        gemma3's post-norms) and the next norm: returns ``(s, rms_norm(s, w))``."""
        s = self.add(x, y if y_norm is None else self.rms_norm(y, y_norm, eps))
        return s, self.rms_norm(s, w, eps)

    # --- whole steps --------------------------------------------------------------
    def decode_step(self, step: Callable[[int, Any], Array], token: int, cache: Any) -> Array:
        """``step(token, cache)``: one token through the whole model, returning its logits.

        A backend may capture the launches of a first call and replay them for later tokens
        (updating only the position-dependent arguments); this default just runs ``step``.
        """
        return step(token, cache)

    def decode_tokens_step(self, step: Callable[[list[int], Any], Array], tokens: Sequence[int], cache: Any) -> Array:
        """``step(tokens, cache)``: a few tokens of one sequence through the whole model, returning the logits
        of each (a speculative draft's verification); a backend may capture and replay it as :meth:`decode_step`."""
        return step(list(tokens), cache)

    def decode_batch_step(self, step: Callable[[list[int], list[Any]], Array], tokens: Sequence[int],
                          caches: Sequence[Any]) -> Array:
        """``step(tokens, caches)``: one token for each of several sequences through the whole model,
        returning their logits ``[B, n_vocab]``; a backend may capture and replay it as :meth:`decode_step`."""
        return step(list(tokens), list(caches))

    # --- transformer-specific -----------------------------------------------
    @abstractmethod
    def rope(self, x: Array, positions: np.ndarray, *, n_rot: int, base: float,
             style: RopeStyle, freq_scale: float = 1.0,
             freq_factors: Array | None = None) -> Array:
        """Rotary embedding of ``x [n, heads, head_dim]`` at integer ``positions [n]``.

        The first ``n_rot`` features of each head rotate by
        ``theta_i = pos * freq_scale * base**(-2i/n_rot) / freq_factors[i]``; the rest pass.
        """

    @abstractmethod
    def attention(self, q: Array, k: Array, v: Array, kv: KVBuffer, start: int, *,
                  scale: float, window: int = 0, softcap: float = 0.0) -> Array:
        """Causal attention of new tokens at positions ``start .. start+n-1``.

        ``q [n, n_head, dk]``, ``k [n, n_head_kv, dk]``, ``v [n, n_head_kv, dv]``;
        ``n_head`` is a multiple of ``n_head_kv`` (grouped-query attention).
        ``k`` and ``v`` are first written into ``kv`` at those positions; each
        query then attends to cached positions ``p <= its own`` and, when
        ``window > 0``, ``p > its own - window``. Scores are ``q.k * scale``,
        then ``softcap * tanh(s / softcap)`` when ``softcap > 0``.
        Returns ``[n, n_head, dv]``.
        """
