"""One thread pool sized to the cores while a model serves.

Left alone, the process runs several pools on the same cores: OpenBLAS's (the reference engine's
matmuls), the OpenMP pool of torch (loaded by the tokenizer and grammar libraries) and Alloy's own.
Each sizes itself to the machine, so under load they take cores from one another and decoding
collapses (the reference engine fell from 12 to 1–2 tokens/s on two busy cores). ``share_cores``
gives the cores to the pool that does the work: BLAS for the reference engine, Alloy's for the
compiled one; every other pool gets one thread.
"""
from __future__ import annotations

import os
import sys

import alloy.config


def share_cores(engine: str, threads: int | None = None) -> int:
    """Size the pools for ``engine`` (``alloy`` or ``reference``) on ``threads`` cores (default:
    alloy.config's ``num_threads``); returns that count."""
    from threadpoolctl import threadpool_limits

    if threads is not None:
        alloy.config.set(num_threads=threads)
    cores = alloy.config.get().num_threads
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # OpenMP runtimes loaded later read it at start-up
    threadpool_limits(limits=cores if engine == "reference" else 1, user_api="blas")
    threadpool_limits(limits=1, user_api="openmp")
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)
    return cores
