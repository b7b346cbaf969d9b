"""The 32-element legacy quants Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, plus Q8_0/Q4_0 encoders.

Block layouts (ggml-common.h): an fp16 scale ``d`` (and fp16 min ``m`` for the
_1 types), for 5-bit types a 32-bit mask of high bits, then the low bits with
element ``j`` in the low nibble of byte ``j`` and element ``j + 16`` in its high
nibble. Values are ``d * (q - offset)`` or ``d * q + m`` (``SPLITS``: the affine form).
"""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as Q

from ._tables import f16, records, split
from .affine import Affine, decoder

Q8_0 = np.dtype([("d", "<f2"), ("qs", "i1", 32)])
Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])
Q4_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)])
Q5_0 = np.dtype([("d", "<f2"), ("qh", "u1", 4), ("qs", "u1", 16)])
Q5_1 = np.dtype([("d", "<f2"), ("m", "<f2"), ("qh", "u1", 4), ("qs", "u1", 16)])


def _nibbles(qs: np.ndarray) -> np.ndarray:
    """``(n, 16)`` packed bytes -> ``(n, 32)`` uint8 values (low nibbles first)."""
    return split(qs, 4, axis=1).reshape(-1, 32)


def _fifth_bit(qh: np.ndarray) -> np.ndarray:
    """``(n, 4)`` little-endian 32-bit masks -> ``(n, 32)`` values 0/16."""
    return split(qh, 1, axis=2).reshape(-1, 32) << np.uint8(4)


def _q8_0(blocks) -> Affine:
    r = records(blocks, Q8_0)
    return Affine(r["qs"], f16(r["d"]), None, 32)


def _q4_0(blocks) -> Affine:
    r = records(blocks, Q4_0)
    return Affine(_nibbles(r["qs"]).view(np.int8) - np.int8(8), f16(r["d"]), None, 32, nibble_bias=8)


def _q4_1(blocks) -> Affine:
    r = records(blocks, Q4_1)
    return Affine(_nibbles(r["qs"]).view(np.int8), f16(r["d"]), f16(r["m"]), 32, nibble_bias=0)


def _q5_0(blocks) -> Affine:
    r = records(blocks, Q5_0)
    return Affine((_nibbles(r["qs"]) | _fifth_bit(r["qh"])).view(np.int8) - np.int8(16), f16(r["d"]), None, 32)


def _q5_1(blocks) -> Affine:
    r = records(blocks, Q5_1)
    return Affine((_nibbles(r["qs"]) | _fifth_bit(r["qh"])).view(np.int8), f16(r["d"]), f16(r["m"]), 32)


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """C ``roundf``: nearest integer, halves away from zero (exact in float32)."""
    t = np.trunc(v)
    return t + np.copysign((np.abs(v - t) >= np.float32(0.5)).astype(np.float32), v)


def _encode_q8_0(x: np.ndarray) -> np.ndarray:
    """ggml's reference: d = max|x| / 127, q = round(x / d)."""
    d = np.abs(x).max(axis=1, keepdims=True) / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    out = np.empty(len(x), Q8_0)
    out["d"] = d[:, 0].astype(np.float16)
    out["qs"] = _round_half_away(x * inv).astype(np.int8)
    return out.view(np.uint8)


def _encode_q4_0(x: np.ndarray) -> np.ndarray:
    """ggml's reference: d = (signed value of max |x|) / -8, q = min(15, trunc(x / d + 8.5))."""
    peak = np.take_along_axis(x, np.abs(x).argmax(axis=1)[:, None], axis=1)
    d = peak / np.float32(-8)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
    q = np.minimum(np.trunc(x * inv + np.float32(8.5)), 15).astype(np.uint8)
    out = np.empty(len(x), Q4_0)
    out["d"] = d[:, 0].astype(np.float16)
    out["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return out.view(np.uint8)


SPLITS = {Q.Q8_0: _q8_0, Q.Q4_0: _q4_0, Q.Q4_1: _q4_1, Q.Q5_0: _q5_0, Q.Q5_1: _q5_1}
DECODERS = {q: decoder(split) for q, split in SPLITS.items()}
ENCODERS = {Q.Q8_0: _encode_q8_0, Q.Q4_0: _encode_q4_0}
