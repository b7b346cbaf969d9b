"""The one map between torch and numpy dtypes (bf16 is ml_dtypes' numpy bfloat16), for buffers and launches.

torch is never imported here: the map is built from the torch module a caller
already has (`sys.modules`), so `import alloy` stays free of torch.
"""
from __future__ import annotations

import sys

import ml_dtypes
import numpy as np

bfloat16 = np.dtype(ml_dtypes.bfloat16)

_NAMES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "bfloat16")
_to_numpy: dict | None = None
_to_torch: dict | None = None


def _maps(torch) -> tuple[dict, dict]:
    global _to_numpy, _to_torch
    if _to_numpy is None:
        pairs = [(getattr(torch, n), bfloat16 if n == "bfloat16" else np.dtype(n)) for n in _NAMES]
        _to_numpy = dict(pairs)
        _to_torch = {npdt: tdt for tdt, npdt in pairs}
    return _to_numpy, _to_torch


def loaded_torch():
    """The torch module if the program imported it, else None."""
    return sys.modules.get("torch")


def is_tensor(value) -> bool:
    torch = loaded_torch()
    return torch is not None and isinstance(value, torch.Tensor)


def to_numpy(torch_dtype) -> np.dtype | None:
    """The numpy dtype of a torch dtype, or None when kernels do not support it."""
    return _maps(loaded_torch())[0].get(torch_dtype)


def to_torch(dtype: np.dtype):
    """The torch dtype of a numpy dtype (torch must be imported)."""
    import torch

    return _maps(torch)[1][np.dtype(dtype)]
