"""Token sampling: logit bias, penalties, grammar mask, top-k / top-p / min-p, temperature.

The order follows llama.cpp's default sampler chain: biases and penalties
rewrite the logits, the mask removes disallowed tokens, top-k, top-p and min-p
filter (on the untempered distribution), then the temperature scales what is
left and one token is drawn. ``temperature <= 0`` picks the argmax.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

TOP_LOGPROBS = 20


@dataclass
class SamplingParams:
    temperature: float = 0.8
    top_k: int = 0                  # 0: off
    top_p: float = 1.0              # 1.0: off
    min_p: float = 0.0              # 0.0: off
    seed: int | None = None         # None or negative (llama.cpp's -1): a random seed
    repeat_penalty: float = 1.0     # 1.0: off
    repeat_last_n: int = 64         # 0: off, -1: whole history
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)

    def __post_init__(self):
        checks = [
            ("temperature", self.temperature >= 0),
            ("top_k", self.top_k >= 0),
            ("top_p", 0.0 < self.top_p <= 1.0),
            ("min_p", 0.0 <= self.min_p <= 1.0),
            ("repeat_penalty", self.repeat_penalty > 0),
            ("repeat_last_n", self.repeat_last_n >= -1),
        ]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"sampling parameter {name} = {getattr(self, name)!r} is out of range")


@dataclass
class SampledToken:
    id: int
    logprob: float
    top_logprobs: list[tuple[int, float]]   # the most likely tokens of the final distribution


def _top_indices(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of ``x`` (``k <= x.size``), largest first.

    The smallest of the maxima of ``k`` disjoint blocks is at most the k-th
    largest value, so only entries at or above it need a partial sort; for a
    large vocabulary that is far cheaper than partitioning everything.
    """
    n = x.size
    if n > 64 * k:
        width = n // k
        thr = np.min(np.max(x[: width * k].reshape(k, width), axis=1))
        cand = np.flatnonzero(x >= thr)
    else:
        cand = np.arange(n)
    if cand.size > k:
        cand = cand[np.argpartition(-x[cand], k - 1)[:k]]
    return cand[np.argsort(-x[cand], kind="stable")]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x)
    return x - (m + np.log(np.sum(np.exp(x - m))))


def _top_p_prefix(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Positions of the most likely ``probs`` whose sum first reaches ``top_p``.

    Sorts a growing head of the candidates rather than all of them.
    """
    m = min(probs.size, 256)
    while True:
        head = _top_indices(probs, m)
        mass = np.cumsum(probs[head])
        if mass[-1] >= top_p or m == probs.size:
            return head[: min(m, int(np.searchsorted(mass, top_p)) + 1)]
        m = min(probs.size, m * 8)


class Sampler:
    """Draws tokens from logits under one :class:`SamplingParams`; seeded per instance."""

    def __init__(self, params: SamplingParams | None = None):
        self.params = params or SamplingParams()
        seed = self.params.seed
        self.rng = np.random.default_rng(None if seed is None or seed < 0 else seed)

    def process(self, logits: np.ndarray, history: Sequence[int], mask: np.ndarray | None = None) -> np.ndarray:
        """The logits after bias, penalties and mask (float64, a copy)."""
        p = self.params
        x = np.array(logits, dtype=np.float64).reshape(-1)
        n = x.size
        for tok, bias in p.logit_bias.items():
            if not 0 <= int(tok) < n:
                raise ValueError(f"logit_bias names token {tok}, outside the vocabulary [0, {n})")
            x[int(tok)] += bias
        if p.repeat_last_n == 0:
            window: Sequence[int] = ()
        elif p.repeat_last_n == -1:
            window = history
        else:
            window = history[-p.repeat_last_n:]
        if len(window) and (p.repeat_penalty != 1.0 or p.presence_penalty or p.frequency_penalty):
            counts = Counter(int(t) for t in window if 0 <= t < n)
            ids = np.fromiter(counts.keys(), np.int64, len(counts))
            cnt = np.fromiter(counts.values(), np.float64, len(counts))
            v = x[ids]
            v = np.where(v > 0, v / p.repeat_penalty, v * p.repeat_penalty)
            x[ids] = v - cnt * p.frequency_penalty - p.presence_penalty
        if mask is not None:
            mask = np.asarray(mask, dtype=bool).reshape(-1)
            if mask.size != n:
                raise ValueError(f"token mask has {mask.size} entries for {n} logits")
            if not mask.any():
                raise ValueError("token mask allows no token")
            x[~mask] = -np.inf
        return x

    def candidates(self, x: np.ndarray) -> np.ndarray:
        """Token ids that survive top-k, then top-p, then min-p (of processed logits ``x``).

        Top-p and min-p are computed on the untempered distribution over the
        tokens top-k left, as llama.cpp does.
        """
        p = self.params
        ids = np.arange(x.size) if np.isfinite(x).all() else np.flatnonzero(np.isfinite(x))
        if 0 < p.top_k < ids.size:
            ids = ids[_top_indices(x[ids], p.top_k)]
        if p.top_p < 1.0 or p.min_p > 0.0:
            w = np.exp(x[ids] - np.max(x[ids]))
            probs = w / w.sum()
            if p.min_p > 0.0:
                sel = np.flatnonzero(w >= p.min_p)  # w is probs / probs.max()
                ids, probs = ids[sel], probs[sel]
            if p.top_p < 1.0:
                ids = ids[_top_p_prefix(probs, p.top_p)]
        return ids

    def sample(self, logits: np.ndarray, history: Sequence[int] = (), mask: np.ndarray | None = None) -> SampledToken:
        """One token from ``logits [n_vocab]`` given the sequence so far and an optional allow-mask."""
        p = self.params
        x = self.process(logits, history, mask)
        if p.temperature <= 0:
            ids, logp = np.arange(x.size), _log_softmax(x)
            pick = int(np.argmax(x))
        else:
            ids = self.candidates(x)
            logp = _log_softmax((x if ids.size == x.size else x[ids]) / p.temperature)
            cdf = np.cumsum(np.exp(logp))
            pick = min(int(np.searchsorted(cdf, self.rng.random() * cdf[-1], side="right")), ids.size - 1)
        top = _top_indices(logp, min(TOP_LOGPROBS, ids.size))
        top = top[np.isfinite(logp[top])]
        return SampledToken(int(ids[pick]), float(logp[pick]), [(int(ids[i]), float(logp[i])) for i in top])
