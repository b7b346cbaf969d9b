"""Decode (and for the KV cache, encode) GGML tensor data with numpy.

Each codec family lives in its own module and registers block decoders that
map ``(n_blocks, bytes_per_block)`` uint8 arrays to ``(n_blocks,
elems_per_block)`` float32 arrays, bit-exact with gguf-py's reference.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

from ..errors import CodecError
from . import floats, iquants, kquants, legacy
from .affine import Affine

__all__ = ["SUPPORTED", "Affine", "CodecError", "affine_rows", "block_info", "dequantize", "quantize", "qtype_of"]

_DECODERS: dict[GGMLQuantizationType, Callable[[np.ndarray], np.ndarray]] = {
    **floats.DECODERS, **legacy.DECODERS, **kquants.DECODERS, **iquants.DECODERS,
}
_SPLITS: dict[GGMLQuantizationType, Callable[[np.ndarray], Affine]] = {
    **legacy.SPLITS, **kquants.SPLITS, **iquants.SPLITS,
}
_ENCODERS: dict[GGMLQuantizationType, Callable[[np.ndarray], np.ndarray]] = dict(legacy.ENCODERS)

_CHUNK_ELEMENTS = 1 << 20
SUPPORTED: frozenset[GGMLQuantizationType] = frozenset(_DECODERS)


def qtype_of(qtype: int | str | GGMLQuantizationType) -> GGMLQuantizationType:
    """The ``GGMLQuantizationType`` for an enum member, its id or its name."""
    try:
        if isinstance(qtype, str):
            return GGMLQuantizationType[qtype.upper()]
        return GGMLQuantizationType(int(qtype))
    except (KeyError, ValueError, TypeError):
        raise CodecError(f"unknown GGML tensor type {qtype!r}") from None


def _supported(qtype, table: dict, what: str) -> GGMLQuantizationType:
    q = qtype_of(qtype)
    if q not in table:
        names = ", ".join(sorted(t.name for t in table))
        raise CodecError(f"{what} of GGML type {q.name} is not supported (supported: {names})")
    return q


def block_info(qtype) -> tuple[int, int]:
    """``(elements per block, bytes per block)`` of a supported type."""
    return GGML_QUANT_SIZES[_supported(qtype, _DECODERS, "decoding")]


def _nbytes(q: GGMLQuantizationType, shape: tuple[int, ...]) -> int:
    block, size = GGML_QUANT_SIZES[q]
    if len(shape) == 0 or any(d < 0 for d in shape):
        raise CodecError(f"bad {q.name} tensor shape {shape}")
    if shape[-1] % block:
        raise CodecError(f"{q.name} row length {shape[-1]} is not a multiple of its block size {block}")
    return int(np.prod(shape, dtype=object)) // block * size


def dequantize(raw: np.ndarray, qtype, shape) -> np.ndarray:
    """Decode the bytes ``raw`` of a tensor of type ``qtype`` to float32 of ``shape``."""
    q = _supported(qtype, _DECODERS, "decoding")
    shape = tuple(int(d) for d in shape)
    raw = np.asarray(raw)
    if raw.dtype != np.uint8:
        raw = np.ascontiguousarray(raw).view(np.uint8)
    raw = raw.reshape(-1)
    expected = _nbytes(q, shape)
    if raw.size != expected:
        raise CodecError(f"{q.name} tensor of shape {shape} needs {expected} bytes, got {raw.size}")
    block, size = GGML_QUANT_SIZES[q]
    blocks = raw.reshape(-1, size)
    decode = _DECODERS[q]
    step = max(1, _CHUNK_ELEMENTS // block)
    with np.errstate(invalid="ignore", over="ignore"):   # inf/nan scales decode to inf/nan, as in ggml
        if len(blocks) <= step:
            return np.asarray(decode(blocks), dtype=np.float32).reshape(shape)
        out = np.empty((len(blocks), block), np.float32)
        for start in range(0, len(blocks), step):   # bounded temporaries for big tensors
            out[start:start + step] = decode(blocks[start:start + step])
    return out.reshape(shape)


def affine_rows(raw: np.ndarray, qtype, n_cols: int) -> Affine:
    """The affine split of whole rows of ``n_cols`` elements: codes ``(rows, n_cols)``, scales
    ``(rows, n_cols // group)``. ``raw``: the rows' bytes (any shape whose size is a whole number of rows)."""
    q = _supported(qtype, _SPLITS, "affine splitting")
    block, size = GGML_QUANT_SIZES[q]
    raw = np.asarray(raw)
    if raw.dtype != np.uint8:
        raw = np.ascontiguousarray(raw).view(np.uint8)
    raw = raw.reshape(-1)
    if n_cols % block or raw.size % (n_cols // block * size):
        raise CodecError(f"{q.name}: {raw.size} bytes are not whole rows of {n_cols} elements")
    rows = raw.size // (n_cols // block * size)
    a = _SPLITS[q](raw.reshape(-1, size))

    def per_row(factors):  # (blocks, 1) and (blocks, groups) -> (rows, blocks a row) and (rows, groups a row)
        return None if factors is None else (factors[0].reshape(rows, -1), factors[1].reshape(rows, -1))

    return Affine(a.codes.reshape(rows, n_cols), a.scales.reshape(rows, -1),
                  None if a.offsets is None else a.offsets.reshape(rows, -1), a.group, a.nibble_bias,
                  per_row(a.scale_factors), per_row(a.offset_factors))


def quantize(x: np.ndarray, qtype) -> np.ndarray:
    """Encode float data as ``qtype`` (Q8_0 or Q4_0, ggml's reference rounding).

    Returns uint8 of shape ``(*x.shape[:-1], bytes per row)``; rows must fill whole blocks.
    """
    q = _supported(qtype, _ENCODERS, "encoding")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 0:
        raise CodecError(f"cannot encode a scalar as {q.name}")
    _nbytes(q, x.shape)
    block, size = GGML_QUANT_SIZES[q]
    out = _ENCODERS[q](np.ascontiguousarray(x).reshape(-1, block))
    return out.reshape(*x.shape[:-1], x.shape[-1] // block * size)
