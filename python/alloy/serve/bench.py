"""``alloy bench``: prompt-processing and generation throughput of a model, in llama-bench's shape.

``pp{n}``: a prompt of ``n`` tokens pushed through a fresh cache; ``tg{n}``: ``n`` tokens generated one
at a time from a fresh cache. Each test runs once to warm up, then ``repetitions`` times; a row
reports the mean and standard deviation of tokens per second over the repetitions.
"""
from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np


@dataclass
class BenchRow:
    """One test's result (the JSON / CSV row)."""

    engine: str
    test: str
    n_prompt: int
    n_gen: int
    tokens_per_second: float
    std: float
    device: str
    model: str
    quant: str
    threads: int
    samples: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def device_name(device: str = "cpu") -> str:
    """The CPU model name, or the GPU's for ``cuda`` (what llama-bench prints as its backend's device)."""
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _prompt_tokens(n: int, n_vocab: int, seed: int = 0) -> list[int]:
    return [int(t) for t in np.random.default_rng(seed).integers(0, n_vocab, n)]


def _time_prompt(model, tokens: list[int]) -> float:
    cache = model.new_cache(len(tokens) + 1)
    start = time.perf_counter()
    model.forward(tokens, cache, last_only=True)
    return time.perf_counter() - start


def _time_generation(model, n_gen: int, token: int) -> float:
    cache = model.new_cache(n_gen + 1)
    start = time.perf_counter()
    for _ in range(n_gen):
        model.forward([token], cache, last_only=True)
    return time.perf_counter() - start


def bench(model, *, engine: str, model_name: str, quant: str, threads: int, n_prompt: int = 512,
          n_gen: int = 128, repetitions: int = 5, progress: Callable[[], None] | None = None) -> list[BenchRow]:
    """The pp and tg rows (a test with 0 tokens is skipped); ``progress`` is called after every run."""
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, got {repetitions}")
    rows = []
    tests = []
    if n_prompt > 0:
        tokens = _prompt_tokens(n_prompt, model.config.n_vocab)
        tests.append((f"pp{n_prompt}", n_prompt, 0, lambda: _time_prompt(model, tokens)))
    if n_gen > 0:
        tests.append((f"tg{n_gen}", 0, n_gen, lambda: _time_generation(model, n_gen, 1)))
    for name, n_p, n_g, run in tests:
        run()  # warm-up: compiles and caches kernels, touches the weights
        if progress:
            progress()
        rates = []
        for _ in range(repetitions):
            rates.append((n_p + n_g) / run())
            if progress:
                progress()
        rows.append(BenchRow(engine, name, n_p, n_g, statistics.fmean(rates),
                             statistics.stdev(rates) if len(rates) > 1 else 0.0,
                             device_name(getattr(model.ops, "device", "cpu")), model_name, quant,
                             threads, rates))
    return rows


def runs_of(n_prompt: int, n_gen: int, repetitions: int) -> int:
    """How many timed and warm-up runs :func:`bench` makes (the progress bar's total)."""
    return (repetitions + 1) * ((n_prompt > 0) + (n_gen > 0))
