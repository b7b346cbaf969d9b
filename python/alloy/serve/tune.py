"""``alloy tune MODEL``: measure the compiled engine's kernel blocks on the model's own shapes.

Every distinct quantized weight (layout and shape) of the model is timed in the prefill kernel
(``quant_matmul``, a full prefill chunk of activation rows) over the candidate blocks of
``ops.alloy.ops.MATMUL_TUNER``; the winners go to this device's tuning table, which the engine reads
when it loads a model. Decode needs no table: its kernel's block is the weights' interleave.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import alloy as al

from .models.base import PREFILL_CHUNK
from .ops.alloy import AlloyOps, QuantWeight
from .ops.alloy.matmul_kernels import quant_matmul
from .ops.alloy.ops import MATMUL_TUNER, matmul_key


@dataclass
class TuneResult:
    weight: str          # one tensor of this shape and layout
    shape: tuple[int, int]
    qtype: str
    blocks: dict         # the winner's constexprs
    seconds: float       # its best time
    slowest: float


def distinct_weights(model) -> list[QuantWeight]:
    """One quantized weight per (shape, layout) that ``model`` multiplies by."""
    seen: dict[str, QuantWeight] = {}
    for value in [model.output, *(v for layer in model.layers for v in vars(layer).values())]:
        if isinstance(value, QuantWeight):
            seen.setdefault(matmul_key(value, PREFILL_CHUNK), value)
    return list(seen.values())


def candidates() -> int:
    return len(MATMUL_TUNER.configs_for("cpu"))


def tune_model(model, progress: Callable[[], None] | None = None) -> list[TuneResult]:
    """Tune every distinct weight of ``model`` (loaded with the compiled engine); returns the winners."""
    if not isinstance(model.ops, AlloyOps):
        raise ValueError("alloy tune MODEL tunes the compiled engine; load the model with engine='alloy'")
    rng = np.random.default_rng(0)
    results = []
    for w in distinct_weights(model):
        n_out, n_in = w.shape
        x = rng.standard_normal((PREFILL_CHUNK, n_in)).astype(np.float32)
        y = np.empty((PREFILL_CHUNK, n_out), np.float32)
        consts, arrays = AlloyOps._quant_consts(w), AlloyOps._quant_arrays(w)

        def run(config, w=w, x=x, y=y, consts=consts, arrays=arrays):
            bm, bn = config.constexprs["BM"], config.constexprs["BN"]
            quant_matmul[(al.cdiv(PREFILL_CHUNK, bm), al.cdiv(w.shape[0], bn))](
                X=x, **arrays, Y=y, M=PREFILL_CHUNK, N=w.shape[0], NP=w.scales.shape[1], K=w.shape[1], BM=bm,
                BN=bn, **consts)

        winner, times = MATMUL_TUNER.measure("cpu", matmul_key(w, PREFILL_CHUNK), run,
                                             progress=(lambda config, seconds: progress()) if progress else None)
        results.append(TuneResult(w.name, w.shape, w.qtype, dict(winner.constexprs), times[winner],
                                  max(times.values())))
    return results
