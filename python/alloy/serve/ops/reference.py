"""The numpy reference implementation of the op interface.

Weights are dequantized once, at load, to float32; all math is float32 and the
heavy parts (matmuls, attention) go through BLAS, which releases the GIL.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

from .arrays import KV_DTYPES, DeviceKV, HostArrays
from .base import Ops, RopeStyle, TensorLike

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _dequantize(tensor: TensorLike) -> np.ndarray:
    from ..gguf.codecs import dequantize

    return np.ascontiguousarray(dequantize(tensor.data, tensor.qtype, tensor.shape), dtype=np.float32)


@functools.lru_cache(maxsize=16)
def rope_table(positions: bytes, n_rot: int, base: float, freq_scale: float,
                factors: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin ``[n, 1, n_rot/2]`` of the rotation angles; cached because every
    layer of a forward pass asks for the same table."""
    inv = base ** (-np.arange(n_rot // 2, dtype=np.float64) * 2.0 / n_rot) * freq_scale
    if factors is not None:
        inv = inv / np.frombuffer(factors, np.float64)
    theta = np.frombuffer(positions, np.int64).astype(np.float64)[:, None] * inv[None, :]
    return np.cos(theta).astype(np.float32)[:, None, :], np.sin(theta).astype(np.float32)[:, None, :]


class ReferenceOps(Ops):
    """Float32 numpy ops."""

    batched_decode = True   # BLAS reads each weight once for the whole batch

    def __init__(self, kv: str = "f32") -> None:
        """``kv``: what the KV cache stores (:data:`~alloy.serve.ops.arrays.KV_DTYPES`; float32 unless asked,
        as the oracle; the server asks for its ``kv_type``)."""
        if kv not in KV_DTYPES:
            raise ValueError(f"KV cache type {kv!r} is not one of {', '.join(KV_DTYPES)}")
        self.kv_dtype = KV_DTYPES[kv]

    def weight(self, tensor: TensorLike) -> np.ndarray:
        w = _dequantize(tensor)
        if w.ndim != 2:
            raise ValueError(f"tensor {tensor.name!r}: expected a 2-D weight, got shape {w.shape}")
        return w

    def vector(self, tensor: TensorLike | np.ndarray) -> np.ndarray:
        if isinstance(tensor, np.ndarray):
            return np.ascontiguousarray(tensor, dtype=np.float32)
        return _dequantize(tensor)

    def kv_buffer(self, max_tokens: int, n_head_kv: int, head_dim_k: int, head_dim_v: int) -> DeviceKV:
        return DeviceKV(HostArrays(), max_tokens, n_head_kv, head_dim_k, head_dim_v, self.kv_dtype)

    def embedding(self, table: np.ndarray, ids: Sequence[int]) -> np.ndarray:
        idx = np.asarray(ids, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= table.shape[0]):
            bad = idx[(idx < 0) | (idx >= table.shape[0])][0]
            raise ValueError(f"token id {int(bad)} is outside the vocabulary [0, {table.shape[0]})")
        return table[idx]

    def reshape(self, x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        return x.reshape(shape)

    def take_rows(self, x: np.ndarray, rows: slice) -> np.ndarray:
        return x[rows]

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def matmul(self, x: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        y = x @ w.T
        if bias is not None:
            y += bias
        return y

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a * b

    def scale(self, x: np.ndarray, s: float) -> np.ndarray:
        return x * np.float32(s)

    def softcap(self, x: np.ndarray, cap: float) -> np.ndarray:
        return np.tanh(x * np.float32(1.0 / cap)) * np.float32(cap)

    def rms_norm(self, x: np.ndarray, w: np.ndarray | None, eps: float) -> np.ndarray:
        ms = np.mean(np.square(x), axis=-1, keepdims=True)
        y = x * (1.0 / np.sqrt(ms + np.float32(eps)))
        return y if w is None else y * w

    def layer_norm(self, x: np.ndarray, w: np.ndarray | None, b: np.ndarray | None, eps: float) -> np.ndarray:
        mu = np.mean(x, axis=-1, keepdims=True)
        d = x - mu
        y = d * (1.0 / np.sqrt(np.mean(np.square(d), axis=-1, keepdims=True) + np.float32(eps)))
        if w is not None:
            y = y * w
        return y if b is None else y + b

    def gelu(self, x: np.ndarray) -> np.ndarray:
        inner = np.float32(_SQRT_2_OVER_PI) * x * (1.0 + np.float32(0.044715) * x * x)
        return 0.5 * x * (1.0 + np.tanh(inner))

    def silu(self, x: np.ndarray) -> np.ndarray:
        return x / (1.0 + np.exp(-x))

    def softmax(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)

    def rope(self, x: np.ndarray, positions: np.ndarray, *, n_rot: int, base: float,
             style: RopeStyle, freq_scale: float = 1.0,
             freq_factors: np.ndarray | None = None) -> np.ndarray:
        hd = x.shape[-1]
        if n_rot % 2 or n_rot > hd:
            raise ValueError(f"rope over {n_rot} dims of a {hd}-dim head")
        factors = None if freq_factors is None else np.asarray(freq_factors, np.float64).tobytes()
        cos, sin = rope_table(np.asarray(positions, np.int64).tobytes(), n_rot, float(base),
                               float(freq_scale), factors)
        half = n_rot // 2
        out = x.copy()
        if style == "normal":
            x0, x1 = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
            out[..., 0:n_rot:2] = x0 * cos - x1 * sin
            out[..., 1:n_rot:2] = x0 * sin + x1 * cos
        elif style == "neox":
            x0, x1 = x[..., :half], x[..., half:n_rot]
            out[..., :half] = x0 * cos - x1 * sin
            out[..., half:n_rot] = x0 * sin + x1 * cos
        else:
            raise ValueError(f"unknown rope style {style!r} (expected 'normal' or 'neox')")
        return out

    def attention(self, q: np.ndarray, k: np.ndarray, v: np.ndarray, kv: DeviceKV, start: int, *,
                  scale: float, window: int = 0, softcap: float = 0.0) -> np.ndarray:
        n, n_head, dk = q.shape
        n_kv = k.shape[1]
        if n_head % n_kv:
            raise ValueError(f"{n_head} query heads do not group over {n_kv} KV heads")
        g = n_head // n_kv
        end = start + n
        kv.write(start, k.transpose(1, 0, 2), v.transpose(1, 0, 2))
        lo = max(0, start - window + 1) if window > 0 else 0
        keys, vals = kv.read(lo, end)                               # [n_kv, t, dk], [n_kv, t, dv]
        qg = q.reshape(n, n_kv, g, dk).transpose(1, 2, 0, 3).reshape(n_kv, g * n, dk)
        s = np.matmul(qg, keys.transpose(0, 2, 1))                  # [n_kv, g*n, t]
        s *= np.float32(scale)
        if softcap > 0:
            s = self.softcap(s, softcap)
        s = s.reshape(n_kv, g, n, end - lo)
        qpos = np.arange(start, end)[:, None]
        kpos = np.arange(lo, end)[None, :]
        masked = kpos > qpos
        if window > 0:
            masked |= qpos - kpos >= window
        if masked.any():
            s[..., masked] = -np.inf
        s -= s.max(axis=-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        o = np.matmul(s.reshape(n_kv, g * n, end - lo), vals)      # [n_kv, g*n, dv]
        return o.reshape(n_kv, g, n, -1).transpose(2, 0, 1, 3).reshape(n, n_head, -1)
