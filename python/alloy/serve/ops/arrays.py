"""Where an engine's arrays live: host memory (numpy: the reference engine, the CPU target) or the GPU
(torch CUDA tensors, the CUDA target), and the per-layer KV storage built on them. The compiled ops
are written once against this small interface."""
from __future__ import annotations

import numpy as np

from .base import KVBuffer


class HostArrays:
    """numpy arrays in host memory."""

    device = "cpu"

    @staticmethod
    def empty(shape, dtype=np.float32):
        return np.empty(shape, dtype)

    @staticmethod
    def zeros(shape, dtype=np.float32):
        return np.zeros(shape, dtype)

    @staticmethod
    def upload(a: np.ndarray):
        return np.ascontiguousarray(a)

    @staticmethod
    def download(x) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    @staticmethod
    def write(dst, values: np.ndarray) -> None:
        """Overwrite ``dst`` in place with host ``values`` of its shape."""
        dst[...] = values

    @staticmethod
    def copy(x):
        return x.copy()

    @staticmethod
    def contiguous(x):
        return np.ascontiguousarray(x, dtype=np.float32)

    @staticmethod
    def size(x) -> int:
        return x.size

    @staticmethod
    def concatenate(parts, axis: int):
        return np.concatenate(parts, axis=axis)

    @staticmethod
    def nbytes(x) -> int:
        return x.nbytes


class CudaArrays:
    """torch tensors on the current CUDA device (Alloy's CUDA launches bind them without copies)."""

    device = "cuda"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self._dtypes = {np.dtype(np.float32): torch.float32, np.dtype(np.float16): torch.float16,
                        np.dtype(np.int8): torch.int8, np.dtype(np.uint8): torch.uint8,
                        np.dtype(np.int32): torch.int32}

    def empty(self, shape, dtype=np.float32):
        return self.torch.empty(tuple(shape), dtype=self._dtypes[np.dtype(dtype)], device="cuda")

    def zeros(self, shape, dtype=np.float32):
        return self.torch.zeros(tuple(shape), dtype=self._dtypes[np.dtype(dtype)], device="cuda")

    def upload(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to("cuda")

    def download(self, x) -> np.ndarray:
        return x.float().cpu().numpy()

    def write(self, dst, values: np.ndarray) -> None:
        dst.copy_(self.torch.from_numpy(np.ascontiguousarray(values)).reshape(dst.shape))

    @staticmethod
    def copy(x):
        return x.clone()

    @staticmethod
    def contiguous(x):
        return x.contiguous()

    @staticmethod
    def size(x) -> int:
        return x.numel()

    def concatenate(self, parts, axis: int):
        return self.torch.cat(parts, dim=axis)

    @staticmethod
    def nbytes(x) -> int:
        return x.element_size() * x.numel()


KV_DTYPES = {"f16": np.float16, "f32": np.float32, "q8_0": np.int8}
"""What the KV cache stores keys and values as: ``f16`` (the default), ``f32``, or ``q8_0`` (int8 codes
with a float32 scale per :data:`KV_GROUP` values of a head: 1.125 bytes a value)."""
KV_GROUP = 32


def quantize_q8_0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x [..., d]`` float32 as int8 codes ``round(x * 127 / amax)`` and scales ``amax / 127`` per group of
    :data:`KV_GROUP` (the cache-store kernel computes the same, in the same order)."""
    groups = x.astype(np.float32).reshape(*x.shape[:-1], -1, KV_GROUP)
    amax = np.abs(groups).max(axis=-1)
    inv = np.float32(127.0) / np.maximum(amax, np.float32(1e-30))
    codes = np.floor(groups * inv[..., None] + np.float32(0.5))
    return codes.astype(np.int8).reshape(x.shape), (amax / np.float32(127.0)).astype(np.float32)


def dequantize_q8_0(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    groups = codes.astype(np.float32).reshape(*codes.shape[:-1], -1, KV_GROUP)
    return (groups * scales[..., None]).reshape(codes.shape)


class DeviceKV(KVBuffer):
    """One layer's keys ``[n_head_kv, capacity, dk]`` and values ``[n_head_kv, capacity, dv]`` (``dtype``; for
    int8, ``q8_0`` codes with scales ``k_scale``/``v_scale`` ``[n_head_kv, capacity, d / KV_GROUP]``) in
    ``arrays``' memory; grows by doubling (``generation`` counts the moves)."""

    def __init__(self, arrays, max_tokens: int, n_head_kv: int, head_dim_k: int, head_dim_v: int,
                 dtype=np.float16):
        self.arrays = arrays
        self.dtype = np.dtype(dtype)
        self.quantized = self.dtype == np.int8
        if self.quantized and (head_dim_k % KV_GROUP or head_dim_v % KV_GROUP):
            raise ValueError(f"a q8_0 KV cache needs head sizes that are multiples of {KV_GROUP}, "
                             f"not {head_dim_k} and {head_dim_v}")
        self.max_tokens = max_tokens
        self.generation = 0
        capacity = min(max_tokens, 256)
        self.k = arrays.zeros((n_head_kv, capacity, head_dim_k), self.dtype)
        self.v = arrays.zeros((n_head_kv, capacity, head_dim_v), self.dtype)
        self.k_scale = self.v_scale = None
        if self.quantized:
            self.k_scale = arrays.zeros((n_head_kv, capacity, head_dim_k // KV_GROUP))
            self.v_scale = arrays.zeros((n_head_kv, capacity, head_dim_v // KV_GROUP))

    def _buffers(self) -> tuple[str, ...]:
        return ("k", "v", "k_scale", "v_scale") if self.quantized else ("k", "v")

    def ensure(self, end: int) -> None:
        """Make room for positions ``[0, end)``."""
        if end > self.max_tokens:
            raise ValueError(f"KV cache holds {self.max_tokens} tokens; position {end - 1} does not fit")
        capacity = self.k.shape[1]
        if end <= capacity:
            return
        while capacity < end:
            capacity = min(2 * capacity, self.max_tokens)
        for name in self._buffers():
            old = getattr(self, name)
            new = self.arrays.zeros((old.shape[0], capacity, old.shape[2]), np.float32 if "scale" in name else self.dtype)
            new[:, :old.shape[1]] = old
            setattr(self, name, new)
        self.generation += 1

    @property
    def nbytes(self) -> int:
        """Bytes the keys and values (and their scales) take now (capacity, not length)."""
        return sum(self.arrays.nbytes(getattr(self, name)) for name in self._buffers())

    def copy_prefix(self, src: "DeviceKV", n: int) -> None:
        """Take positions ``[0, n)`` of ``src`` (another sequence's cache of the same shape) as this one's."""
        self.ensure(n)
        for name in self._buffers():
            getattr(self, name)[:, :n] = getattr(src, name)[:, :n]

    def write(self, start: int, k: np.ndarray, v: np.ndarray) -> None:
        """Host arrays: store keys ``[n_kv, t, dk]`` and values at positions ``start ..`` (the reference engine)."""
        end = start + k.shape[1]
        self.ensure(end)
        if self.quantized:
            self.k[:, start:end], self.k_scale[:, start:end] = quantize_q8_0(k)
            self.v[:, start:end], self.v_scale[:, start:end] = quantize_q8_0(v)
        else:
            self.k[:, start:end] = k
            self.v[:, start:end] = v

    def read(self, lo: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Host arrays: keys and values of positions ``[lo, end)`` as float32."""
        if self.quantized:
            return (dequantize_q8_0(self.k[:, lo:end], self.k_scale[:, lo:end]),
                    dequantize_q8_0(self.v[:, lo:end], self.v_scale[:, lo:end]))
        return self.k[:, lo:end].astype(np.float32), self.v[:, lo:end].astype(np.float32)
