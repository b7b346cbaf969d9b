"""Non-linear 4-bit quants IQ4_NL (32-element blocks) and IQ4_XS (256-element super-blocks).

A 4-bit index selects one of 16 fixed levels (``LEVELS``), scaled by the block's
fp16 ``d`` (IQ4_XS: times a 6-bit signed sub-block scale). Nibble order as in Q4_0.
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as Q

from ._tables import f16, records, split
from .affine import Affine, decoder, factored

LEVELS = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113], np.int8)

IQ4_NL = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
IQ4_XS = np.dtype([("d", "<f2"), ("scales_h", "<u2"), ("scales_l", "u1", 4), ("qs", "u1", 128)])


def _levels(qs: np.ndarray) -> np.ndarray:
    """``(..., 16)`` bytes -> ``(..., 32)`` int8 levels, low nibbles first."""
    idx = split(qs, 4, axis=qs.ndim - 1)
    return LEVELS[idx.reshape(*qs.shape[:-1], 32)]


def _iq4_nl(blocks) -> Affine:
    r = records(blocks, IQ4_NL)
    return Affine(_levels(r["qs"]), f16(r["d"]), None, 32)


def _iq4_xs(blocks) -> Affine:
    r = records(blocks, IQ4_XS)
    n = len(r)
    # scale of sub-block i: nibble i % 2 of scales_l[i // 2], topped with bits 2i of scales_h
    low = split(r["scales_l"], 4, axis=2).reshape(n, 8)
    high = (r["scales_h"][:, None] >> np.arange(0, 16, 2, dtype=np.uint16)) & 3
    scales = (low | (high.astype(np.uint8) << np.uint8(4))).view(np.int8) - np.int8(32)
    d, factors = factored(f16(r["d"]), scales)
    return Affine(_levels(r["qs"].reshape(n, 8, 16)).reshape(n, 256), d, None, 32, scale_factors=factors)


SPLITS = {Q.IQ4_NL: _iq4_nl, Q.IQ4_XS: _iq4_xs}
DECODERS = {q: decoder(split) for q, split in SPLITS.items()}
