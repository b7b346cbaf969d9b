"""GGUF weights repacked at load into the layout the engine's kernels read — still quantized.

``QuantWeight``: every quantized block type split into int8 codes (4-bit types: two codes a byte,
ggml's nibble order) and per-group scales / offsets (``gguf.codecs.Affine``). The legacy types keep
one fp16 scale (and offset) a group; the super-block types (K-quants, IQ4_XS) keep each scale's two
factors — the block's fp16 scale and the group's small integer — which is exact and takes about a
byte a group. The codes of a block of 8 (4) output rows are interleaved group by group, so a
matrix-vector program reads one sequential run (twice the DRAM throughput of row-major codes here);
scales are group-major, so a block reads a group's scales with one vector load. The kernels compute
exactly the numbers the numpy decoders do.
``DenseWeight``: F32 and F16 tensors as stored (a view of the file mapping), BF16 widened to float32.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from gguf import GGMLQuantizationType as Q

from ...gguf.codecs import affine_rows, block_info
from ..base import TensorLike

_ROWS_PER_CHUNK_ELEMENTS = 1 << 22   # bounds the int8/float32 temporaries of a split
SUPER_BLOCK = 256   # elements under one K-quant / IQ4_XS block scale


def interleave(nibbles: bool, group: int) -> int:
    """Rows interleaved per block of codes: the matrix-vector kernel's output block (128 bytes of codes a
    group for 32-element groups; 16-element groups take 8 rows)."""
    return 8 if nibbles or group == 16 else 4
_DENSE = {Q.F32: np.float32, Q.F16: np.float16}


@dataclass
class QuantWeight:
    """``(n_out, n_in)`` as codes, scales and optional offsets per group of ``group`` elements."""

    name: str
    shape: tuple[int, int]
    codes: np.ndarray            # (n_pad // rows, n_in // group, rows, group bytes): int8, uint8 for nibbles
    scales: np.ndarray           # float16 or float32 (n_in // group, n_pad): group-major; with
                                 # block_scales: the per-group integer factor (int8 or uint8)
    offsets: np.ndarray | None   # like scales, or None
    group: int
    nibble_bias: int | None      # subtracted from each nibble; None: int8 codes
    qtype: str
    rows: int                    # rows interleaved per block (INTERLEAVE); n_pad: n_out rounded up to it
    block_scales: np.ndarray | None = None    # float16 (n_in // 256, n_pad): the super-block factor
    block_offsets: np.ndarray | None = None
    groups_per_block: int = 0                 # 256 // group when the scales are factored, else 0

    @property
    def layout(self) -> tuple:
        """What a kernel specialises on: array dtypes, group size, nibble bias, interleave, factoring."""
        return (_dtype(self.codes), _dtype(self.scales), _dtype(self.offsets), _dtype(self.block_scales),
                self.group, self.nibble_bias, self.rows, self.groups_per_block)

    def to(self, arrays) -> "QuantWeight":
        """The same weight with its arrays in ``arrays``' memory (``ops.arrays``)."""
        moved = {f: None if getattr(self, f) is None else arrays.upload(getattr(self, f))
                 for f in ("codes", "scales", "offsets", "block_scales", "block_offsets")}
        return dataclasses.replace(self, **moved)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.codes, self.scales, self.offsets, self.block_scales, self.block_offsets)
                   if a is not None and hasattr(a, "nbytes"))


@dataclass
class DenseWeight:
    """A float weight ``(n_out, n_in)``: float32 or float16 as stored (bfloat16 widened to float32)."""

    name: str
    shape: tuple[int, int]
    data: np.ndarray
    qtype: str

    @property
    def layout(self) -> tuple:
        return (_dtype(self.data),)

    def to(self, arrays) -> "DenseWeight":
        return dataclasses.replace(self, data=arrays.upload(self.data))

    @property
    def nbytes(self) -> int:
        return self.data.nbytes


def _dtype(a) -> str | None:
    return None if a is None else str(a.dtype)


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
    raw = raw.view(np.uint8).reshape(n_out, n_in // block * size)
    probe = affine_rows(raw[:1], qtype, n_in)
    nibbles = probe.nibble_bias is not None and n_in % 32 == 0
    rows = interleave(nibbles, probe.group)
    n_pad = -(-n_out // rows) * rows
    groups = n_in // probe.group
    factored = probe.scale_factors is not None and n_in % SUPER_BLOCK == 0
    width = n_in // 2 if nibbles else n_in
    codes = np.zeros((n_pad // rows, groups, rows, width // groups), np.uint8 if nibbles else np.int8)

    def plane(sample: np.ndarray | None, count: int) -> np.ndarray | None:
        return None if sample is None else np.zeros((count, n_pad), sample.dtype)

    if factored:
        scales, offsets = plane(probe.scale_factors[1], groups), plane(
            None if probe.offset_factors is None else probe.offset_factors[1], groups)
        blocks_ = plane(probe.scale_factors[0], n_in // SUPER_BLOCK)
        block_offsets = plane(None if probe.offset_factors is None else probe.offset_factors[0], n_in // SUPER_BLOCK)
    else:
        scales, offsets, blocks_, block_offsets = plane(probe.scales, groups), plane(probe.offsets, groups), None, None
    # the split is done a chunk of rows at a time, straight into the repacked arrays: the temporaries stay small
    step = max(rows, _ROWS_PER_CHUNK_ELEMENTS // n_in // rows * rows)
    for lo in range(0, n_out, step):
        part = affine_rows(raw[lo:lo + step], qtype, n_in)
        n = part.codes.shape[0]
        chunk = _pack_nibbles(part.codes, probe.nibble_bias) if nibbles else part.codes
        padded = np.zeros((-(-n // rows) * rows, width), chunk.dtype)
        padded[:n] = chunk
        codes[lo // rows: lo // rows + len(padded) // rows] = padded.reshape(-1, rows, groups, width // groups) \
            .transpose(0, 2, 1, 3).view(codes.dtype)
        if factored:
            scales[:, lo:lo + n] = part.scale_factors[1].T
            blocks_[:, lo:lo + n] = part.scale_factors[0].T
            if offsets is not None:
                offsets[:, lo:lo + n] = part.offset_factors[1].T
                block_offsets[:, lo:lo + n] = part.offset_factors[0].T
        else:
            scales[:, lo:lo + n] = part.scales.T
            if offsets is not None:
                offsets[:, lo:lo + n] = part.offsets.T
    if factored:  # super-block scale (fp16 in the file) times a small integer per group: exact and compact
        return QuantWeight(tensor.name, shape, codes, scales, offsets, probe.group, probe.nibble_bias if nibbles
                           else None, qtype.name, rows, _narrow(blocks_),
                           None if block_offsets is None else _narrow(block_offsets), SUPER_BLOCK // probe.group)
    scales = _narrow(scales)
    offsets = None if offsets is None else _narrow(offsets)
    return QuantWeight(tensor.name, shape, codes, scales, offsets, probe.group,
                       probe.nibble_bias if nibbles else None, qtype.name, rows)
