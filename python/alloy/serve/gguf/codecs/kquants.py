"""K-quants Q2_K .. Q6_K: 256-element super-blocks of 16 or 8 sub-blocks.

Layouts follow ggml-common.h. Each decoder unpacks every field of all blocks at
once into ``(n, sub-blocks, sub-block size)`` arrays, so the work is a handful
of numpy passes however many blocks there are. Sub-block ``g`` of a super-block
holds elements ``g * size .. (g + 1) * size``.
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as Q

from ._tables import f16, records, split
from .affine import Affine, decoder, factored

Q2_K = np.dtype([("scales", "u1", 16), ("qs", "u1", 64), ("d", "<f2"), ("dmin", "<f2")])
Q3_K = np.dtype([("hmask", "u1", 32), ("qs", "u1", 64), ("scales", "u1", 12), ("d", "<f2")])
Q4_K = np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qs", "u1", 128)])
Q5_K = np.dtype([("d", "<f2"), ("dmin", "<f2"), ("scales", "u1", 12), ("qh", "u1", 32),
                 ("qs", "u1", 128)])
Q6_K = np.dtype([("ql", "u1", 128), ("qh", "u1", 64), ("scales", "i1", 16), ("d", "<f2")])

_4 = np.uint8(4)


def _crumb_groups(qs: np.ndarray) -> np.ndarray:
    """2-bit fields: bytes ``(n, 64)`` -> ``(n, 16, 16)``.

    Each 32-byte half holds four 32-element groups, group ``j`` in bits ``2j``.
    """
    return split(qs.reshape(-1, 2, 32), 2, axis=2).reshape(-1, 16, 16)


def _q2_k(blocks) -> Affine:
    r = records(blocks, Q2_K)
    sc = r["scales"]
    dl, dl_factors = factored(f16(r["d"]), sc & np.uint8(15))
    ml, ml_factors = factored(-f16(r["dmin"]), sc >> _4)   # -(dmin * m), exactly
    return Affine(_crumb_groups(r["qs"]).view(np.int8).reshape(-1, 256), dl, ml, 16,
                  scale_factors=dl_factors, offset_factors=ml_factors)


def _q3_k_scales(s: np.ndarray) -> np.ndarray:
    """Sixteen 6-bit signed scales packed in 12 bytes -> ``(n, 16)`` int8.

    Low 4 bits of scale ``k``: nibble ``k // 8`` of byte ``k % 8``; high 2 bits:
    bits ``2 * (k // 4)`` of byte ``8 + k % 4``.
    """
    low = split(s[:, :8], 4, axis=1).reshape(-1, 16)
    high = split(s[:, 8:], 2, axis=1).reshape(-1, 16)
    return (low | (high << _4)).view(np.int8) - np.int8(32)


def _q3_k(blocks) -> Affine:
    r = records(blocks, Q3_K)
    # bit b of hmask byte i is the high bit of element i of the b-th 32-element group;
    # a clear bit subtracts 4
    hbit = split(r["hmask"], 1, axis=1).reshape(-1, 16, 16)
    q = _crumb_groups(r["qs"]).view(np.int8) - ((hbit ^ np.uint8(1)) << np.uint8(2)).view(np.int8)
    dl, factors = factored(f16(r["d"]), _q3_k_scales(r["scales"]))
    return Affine(q.reshape(-1, 256), dl, None, 16, scale_factors=factors)


def _k4_scales(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eight 6-bit scales and eight 6-bit mins packed in 12 bytes -> two ``(n, 8)`` uint8.

    Sub-blocks 0-3: low 6 bits of bytes 0-3 (scales) and 4-7 (mins); sub-blocks
    4-7: nibbles of bytes 8-11, topped with the spare 2 bits of bytes 0-3 / 4-7.
    """
    a, b, c = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    six, top = np.uint8(63), np.uint8(6)
    scale = np.concatenate([a & six, (c & np.uint8(15)) | ((a >> top) << _4)], axis=1)
    mins = np.concatenate([b & six, (c >> _4) | ((b >> top) << _4)], axis=1)
    return scale, mins


def _k_affine(r, q: np.ndarray) -> Affine:
    """``d * scale * q - dmin * min`` for Q4_K/Q5_K codes ``q`` of shape ``(n, 8, 32)``."""
    scale, mins = _k4_scales(r["scales"])
    d, d_factors = factored(f16(r["d"]), scale)
    m, m_factors = factored(-f16(r["dmin"]), mins)   # -(dmin * min), exactly
    return Affine(q.view(np.int8).reshape(-1, 256), d, m, 32, scale_factors=d_factors, offset_factors=m_factors)


def _k_nibbles(qs: np.ndarray) -> np.ndarray:
    """``(n, 128)`` bytes -> ``(n, 8, 32)``: 32-byte chunk c gives sub-blocks 2c (low) and 2c+1 (high)."""
    return split(qs.reshape(-1, 4, 32), 4, axis=2).reshape(-1, 8, 32)


def _q4_k(blocks) -> Affine:
    r = records(blocks, Q4_K)
    affine = _k_affine(r, _k_nibbles(r["qs"]))
    affine.nibble_bias = 0
    return affine


def _q5_k(blocks) -> Affine:
    r = records(blocks, Q5_K)
    high = split(r["qh"], 1, axis=1)                      # (n, sub-block s, l): bit s of qh[l]
    return _k_affine(r, _k_nibbles(r["qs"]) | (high << _4))


def _q6_k(blocks) -> Affine:
    r = records(blocks, Q6_K)
    n = len(r)
    # per 128-element half: ql bytes 0-31 give groups 0 (low) / 2 (high nibble),
    # bytes 32-63 groups 1 / 3; qh byte l gives bits 4-5 of group j at bits 2j
    low = split(r["ql"].reshape(n, 2, 2, 32), 4, axis=2).reshape(n, 2, 4, 32)
    high = split(r["qh"].reshape(n, 2, 32), 2, axis=2)
    q = (low | (high << _4)).view(np.int8) - np.int8(32)
    d, factors = factored(f16(r["d"]), r["scales"])
    return Affine(q.reshape(n, 256), d, None, 16, scale_factors=factors)


SPLITS = {Q.Q2_K: _q2_k, Q.Q3_K: _q3_k, Q.Q4_K: _q4_k, Q.Q5_K: _q5_k, Q.Q6_K: _q6_k}
DECODERS = {q: decoder(split) for q, split in SPLITS.items()}
