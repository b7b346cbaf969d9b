"""The builtins `alloy tune` can tune: their tuners, the shapes they take and a default sweep.

`tune(op, shape, dtype)` builds random inputs of that shape, times every
configuration of the op's tuner on them, records the winner in this device's
user table (alloy.tuning.store) and returns {config: seconds}.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import config
from ..tuning import store
from ..runtime.torch_dtypes import bfloat16
from . import flash_attention as attention_module
from . import gemm as matmul_module

DTYPES = {"float32": np.dtype(np.float32), "float16": np.dtype(np.float16), "bfloat16": bfloat16}


@dataclass(frozen=True)
class Tunable:
    """A tunable builtin: what its shape means, a default sweep, and how to time it on one shape."""

    shape_help: str
    sweep: tuple[tuple[int, ...], ...]
    measure: Callable  # (shape, dtype, progress) -> (winner, {config: seconds})


def _random(shape, dtype, rng):
    return rng.standard_normal(shape, dtype=np.float32).astype(dtype)


def _gemm(builtin: str, transpose_rhs: bool):
    def measure(shape, dtype, progress):
        m, n, k = shape
        rng = np.random.default_rng(0)
        a = _random((m, k), dtype, rng)
        b = _random((n, k) if transpose_rhs else (k, n), dtype, rng)
        return matmul_module._gemm(builtin, a, b, transpose_rhs, tune=progress)

    return measure


def _attention(shape, dtype, progress):
    lq, lk, dim, group = shape
    rng = np.random.default_rng(0)
    heads = max(group, 4) // group * group
    q = _random((1, heads, lq, dim), dtype, rng)
    k, v = (_random((1, heads // group, lk, dim), dtype, rng) for _ in range(2))
    return attention_module.attention_call(q, k, v, lq == lk, None, tune=progress)


TUNABLE: dict[str, Tunable] = {
    "matmul": Tunable("MxNxK", ((1024, 1024, 1024), (512, 2048, 512), (64, 1024, 1024)), _gemm("matmul", False)),
    "dot_transpose_rhs": Tunable("MxNxK", ((1024, 1024, 1024), (512, 2048, 512), (64, 1024, 1024)),
                                 _gemm("dot_transpose_rhs", True)),
    "attention": Tunable("LqxLkxDxGROUP", ((512, 512, 64, 1), (1, 1024, 64, 4)), _attention),
}


def parse_shape(op: str, text: str) -> tuple[int, ...]:
    """'1024x1024x1024' as a tuple of the op's shape parameters (ValueError naming the op otherwise)."""
    spec = TUNABLE[op].shape_help
    want = len(spec.split("x"))
    try:
        shape = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{op}: shape {text!r} is not {spec} (positive integers joined by 'x')") from None
    if len(shape) != want or min(shape) <= 0:
        raise ValueError(f"{op}: shape {text!r} is not {spec} (positive integers joined by 'x')")
    return shape


def tune(op: str, shape: tuple[int, ...], dtype: str = "float32", progress=None):
    """Time `op`'s configurations on `shape`; records and returns (winner, {config: seconds})."""
    if op not in TUNABLE:
        raise ValueError(f"no tunable builtin {op!r}; choose from {sorted(TUNABLE)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    return TUNABLE[op].measure(shape, DTYPES[dtype], progress or _quiet)


def _quiet(config, seconds):
    pass


def configs_of(op: str, shape: tuple[int, ...], dtype: str) -> int:
    """How many configurations `tune(op, shape, dtype)` times on the configured target."""
    tuner = {"attention": attention_module.TUNER}.get(op) or matmul_module.TUNERS[op]
    return len(tuner.configs_for(config.get().target, json.dumps([list(shape), dtype])))


def device_of() -> str:
    """The device tuning results are recorded for."""
    return store.device_id(config.get().target)


def table_path():
    """This device's user tuning table."""
    return store.user_path(config.get().target)
