"""GGUF weights repacked at load into the layout the engine's kernels read — still quantized.

``QuantWeight``: every quantized block type split into int8 codes (4-bit types: two codes a byte,
ggml's nibble order) and per-group scales / offsets, group-major so that a block of output rows
reads its scales with one vector load (``gguf.codecs.Affine``); a scale array is
float16 where that is exact and float32 where it is not (the K-quants' sub-block scales
``d * scale`` need more bits), so the kernels compute exactly what the numpy decoders do.
``DenseWeight``: F32 and F16 tensors as stored (a view of the file mapping), BF16 widened to float32.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType as Q

from ...gguf.codecs import Affine, affine_rows, block_info
from ..base import TensorLike

_ROWS_PER_CHUNK_ELEMENTS = 1 << 22   # bounds the int8/float32 temporaries of a split
_DENSE = {Q.F32: np.float32, Q.F16: np.float16}


@dataclass
class QuantWeight:
    """``(n_out, n_in)`` as codes, scales and optional offsets per group of ``group`` elements."""

    name: str
    shape: tuple[int, int]
    codes: np.ndarray            # int8 (n_out, n_in), or uint8 (n_out, n_in // 2) for nibbles
    scales: np.ndarray           # float16 or float32 (n_in // group, n_out): group-major
    offsets: np.ndarray | None   # like scales, or None
    group: int
    nibble_bias: int | None      # subtracted from each nibble; None: int8 codes
    qtype: str

    @property
    def layout(self) -> tuple:
        """What a kernel specialises on: code, scale and offset dtypes, group size, nibble bias."""
        return (self.codes.dtype.char, self.scales.dtype.char, None if self.offsets is None else self.offsets.dtype.char,
                self.group, self.nibble_bias)

    @property
    def nbytes(self) -> int:
        return self.codes.nbytes + self.scales.nbytes + (0 if self.offsets is None else self.offsets.nbytes)


@dataclass
class DenseWeight:
    """A float weight ``(n_out, n_in)``: float32 or float16 as stored (bfloat16 widened to float32)."""

    name: str
    shape: tuple[int, int]
    data: np.ndarray
    qtype: str

    @property
    def layout(self) -> tuple:
        return (self.data.dtype.char,)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes


def _narrow(values: np.ndarray) -> np.ndarray:
    """float16 when every value survives the round trip, else float32."""
    with np.errstate(over="ignore"):
        half = values.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), values, equal_nan=True) else values


def _pack_nibbles(codes: np.ndarray, bias: int) -> np.ndarray:
    """int8 codes ``(rows, n)`` in ``-bias .. 15 - bias`` -> bytes ``(rows, n // 2)``: in each 32-element
    group, byte ``j`` holds element ``j`` (low nibble) and ``j + 16`` (high)."""
    rows, n = codes.shape
    u = (codes.astype(np.int16) + bias).astype(np.uint8).reshape(rows, n // 32, 2, 16)
    return (u[:, :, 0] | (u[:, :, 1] << np.uint8(4))).reshape(rows, n // 2)


def repack(tensor: TensorLike) -> QuantWeight | DenseWeight:
    """The engine's layout of a 2-D GGUF weight (raises ValueError for other ranks)."""
    shape = tuple(int(d) for d in tensor.shape)
    if len(shape) != 2:
        raise ValueError(f"tensor {tensor.name!r}: expected a 2-D weight, got shape {shape}")
    qtype = Q(int(tensor.qtype))
    raw = np.asarray(tensor.data)
    if qtype in _DENSE:
        return DenseWeight(tensor.name, shape, raw.view(_DENSE[qtype]).reshape(shape), qtype.name)
    if qtype == Q.BF16:  # widened: numpy has no bfloat16 for the kernels to bind
        wide = (raw.view(np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)
        return DenseWeight(tensor.name, shape, wide.reshape(shape), qtype.name)
    n_out, n_in = shape
    block, size = block_info(qtype)
    row_bytes = n_in // block * size
    raw = raw.view(np.uint8).reshape(n_out, row_bytes)
    step = max(1, _ROWS_PER_CHUNK_ELEMENTS // n_in)
    parts: list[Affine] = [affine_rows(raw[lo:lo + step], qtype, n_in) for lo in range(0, n_out, step)]
    first = parts[0]
    nibbles = first.nibble_bias is not None and n_in % 32 == 0
    codes = np.concatenate([_pack_nibbles(p.codes, first.nibble_bias) if nibbles else p.codes for p in parts])
    scales = np.ascontiguousarray(_narrow(np.concatenate([p.scales for p in parts])).T)
    offsets = None if first.offsets is None else np.ascontiguousarray(
        _narrow(np.concatenate([p.offsets for p in parts])).T)
    return QuantWeight(tensor.name, shape, codes, scales, offsets, first.group,
                       first.nibble_bias if nibbles else None, qtype.name)
