"""Quantized blocks as integer codes with per-group scales and offsets.

Every block type the codecs decode (but the plain floats) is affine per group of
16 or 32 elements: ``value = code * scale + offset``. ``Affine`` holds that
split for a run of blocks; the numpy decoders are built from it, and the
compiled engine (``alloy.serve.ops.alloy``) keeps the codes quantized and does
the same arithmetic inside its kernels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass
class Affine:
    """``codes (n, elements)`` int8, ``scales``/``offsets`` float32 ``(n, elements // group)``
    (``offsets`` None when zero); ``nibble_bias``: for 4-bit types, the value that makes every
    code ``0..15`` when added (else None).

    The super-block types (K-quants, IQ4_XS) also give their scales' two factors: ``scale_factors``
    ``(per block (n, 1) float32, per group (n, groups) small integers)`` whose float32 product is
    ``scales`` exactly, and likewise ``offset_factors`` for ``offsets``."""

    codes: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray | None
    group: int
    nibble_bias: int | None = None
    scale_factors: tuple[np.ndarray, np.ndarray] | None = None
    offset_factors: tuple[np.ndarray, np.ndarray] | None = None

    def decode(self) -> np.ndarray:
        n, elements = self.codes.shape
        q = self.codes.astype(np.float32).reshape(n, elements // self.group, self.group)
        v = q * self.scales[:, :, None]
        if self.offsets is not None:
            v += self.offsets[:, :, None]
        return v.reshape(n, elements)


def factored(block: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """``block * group`` in float32 (what the decoders use) and the factors it came from."""
    return block * group.astype(np.float32), (block, group)


def decoder(split: Callable[[np.ndarray], Affine]) -> Callable[[np.ndarray], np.ndarray]:
    """The block decoder of an affine ``split``."""
    return lambda blocks: split(blocks).decode()
