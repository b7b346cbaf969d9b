"""Unquantized float types: F32, F16, BF16."""
from __future__ import annotations

import numpy as np
from gguf import GGMLQuantizationType as Q


def _f32(blocks: np.ndarray) -> np.ndarray:
    return blocks.view("<f4").copy()


def _f16(blocks: np.ndarray) -> np.ndarray:
    return blocks.view("<f2").astype(np.float32)


def _bf16(blocks: np.ndarray) -> np.ndarray:
    # bfloat16 is the upper half of a float32
    return (blocks.view("<u2").astype(np.uint32) << 16).view(np.float32)


DECODERS = {Q.F32: _f32, Q.F16: _f16, Q.BF16: _bf16}
