"""Argument slots shared by the CPU and CUDA launches: how a scalar becomes its 64-bit slot."""
from __future__ import annotations

import struct

import numpy as np

from ..language import dtypes as dt


def scalar_slot(v, d: dt.dtype) -> int:
    """The 8-byte argument slot of a scalar `v` of dtype `d` (docs/cpu-abi.md): floats as their bits."""
    if d.is_float:
        if d.bits == 64:
            return struct.unpack("<q", struct.pack("<d", float(v)))[0]
        if d.bits == 32:
            return struct.unpack("<i", struct.pack("<f", float(v)))[0]
        return int(np.array(v, dtype=d.np).view(np.uint16))
    return int(v)
