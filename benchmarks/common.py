"""Shared pieces of the benchmarks: timing, the machine's description, result rows and tables.

Timing is the median of N runs after warm-up, measured with `time.perf_counter`.
`compare()` runs Alloy and its peer round-robin, so that load from other
processes on a shared machine falls on both sides alike, and pauses before
each timed call: thread pools keep spinning after a call (Alloy's ~200 us,
OpenMP's up to milliseconds, OpenBLAS's ~0.1 s), and a spinning pool of the
previous contender would take a core from the next one.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import alloy.config

# Each benchmark times launches that run when called: lazy launches (alloy.config lazy) would time only
# their recording. fusion.py turns laziness back on around the fused chain it measures.
alloy.config.set(lazy=False)
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "kernel"

# Set on some processors by the environment for old OpenBLAS builds; they slow a current numpy.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def import_example(name: str):
    """Import `examples/kernel/<name>.py` as module `alloy_example_<name>` (the kernels the benchmarks
    launch; the benchmark scripts share the examples' file names)."""
    import importlib.util

    mod_name = f"alloy_example_{name}"
    if mod_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(mod_name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        spec.loader.exec_module(module)
    return sys.modules[mod_name]


# ------------------------------------------------------------------ timing
class Timing(float):
    """Seconds: the median of the samples (the float value), with the fastest sample in `.best`."""

    best: float
    n: int

    def __new__(cls, samples: list[float]) -> Timing:
        obj = super().__new__(cls, statistics.median(samples))
        obj.best = min(samples)
        obj.n = len(samples)
        return obj


def compare(fns: dict, *, warmup: int = 2, repeat: int = 10, settle: float = 0.02) -> dict[object, Timing]:
    """Timing (median and best of `repeat` runs, after `warmup` untimed ones) of each function; the
    functions run interleaved (round-robin), with a `settle`-second pause before each timed call."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[object, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            time.sleep(settle)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: Timing(ts) for name, ts in times.items()}


def per_call_time(fn: Callable[[], object], *, iters: int, repeat: int = 5) -> Timing:
    """Median (and, in `.best`, the fastest) over `repeat` batches of the mean seconds per call of `fn()`
    in a batch of `iters` calls."""
    fn()
    means = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        means.append((time.perf_counter() - t0) / iters)
    return Timing(means)


# ------------------------------------------------------------------ results
@dataclass
class Row:
    """One benchmark line. `kind` says how the goal reads:

    "speed":  goal on the speed ratio peer_s / alloy_s (Alloy as fast as the peer = 1.0), ratio >= goal
    "max":    goal on Alloy's own value (seconds), alloy_s <= goal

    The status is judged on medians; where the best-of-N ratio disagrees, the status says so.
    """

    name: str
    alloy_s: float | None
    peer: str | None
    peer_s: float | None
    kind: str
    goal: float | None
    note: str = ""
    error: str = ""

    @classmethod
    def failed(cls, name: str, error: BaseException) -> Row:
        """A benchmark that raised: no numbers, the error's first line as the note."""
        first = (str(error).strip().splitlines() or [""])[0]
        return cls(name, None, None, None, "max", None, error=f"{type(error).__name__}: {first[:300]}")

    @property
    def ratio(self) -> float | None:
        """Alloy's speed relative to the peer (peer time / Alloy time); > 1 means Alloy is faster."""
        if self.peer_s is None or self.alloy_s is None:
            return None
        return self.peer_s / self.alloy_s

    @property
    def best_ratio(self) -> float | None:
        """The same ratio from the fastest run of each side (less sensitive to load from other processes)."""
        a, p = getattr(self.alloy_s, "best", None), getattr(self.peer_s, "best", None)
        return None if a is None or p is None else p / a

    @property
    def met(self) -> bool | None:
        """Goal met by the medians (None: no goal)."""
        if self.goal is None or self.alloy_s is None:
            return None
        if self.kind == "speed":
            return self.ratio is not None and self.ratio >= self.goal
        return self.alloy_s <= self.goal

    @property
    def met_best(self) -> bool | None:
        """Goal met by the best-of-N ratio (None: no goal or no best-of-N)."""
        if self.goal is None or self.kind != "speed" or self.best_ratio is None:
            return None
        return self.best_ratio >= self.goal

    def status(self) -> str:
        if self.error:
            return "FAILED"
        text = {None: "-", True: "met", False: "not met"}[self.met]
        if self.met_best is not None and self.met_best != self.met:
            text += f" (best-of-N: {'met' if self.met_best else 'not met'})"
        return text

    def goal_text(self) -> str:
        if self.goal is None:
            return "-"
        if self.kind == "speed":
            return f">= {self.goal:.2f}x"
        return f"<= {fmt_time(self.goal)}"


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.2f} us"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A Markdown table (pastes into docs/benchmarks.md as it is)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def print_rows(rows: list[Row]) -> None:
    headers = ["benchmark", "Alloy", "peer", "peer time", "speed Alloy/peer", "best-of-N speed", "goal", "status"]
    body = []
    for r in rows:
        body.append([r.name, fmt_time(r.alloy_s), r.peer or "-", fmt_time(r.peer_s),
                     "-" if r.ratio is None else f"{r.ratio:.2f}x",
                     "-" if r.best_ratio is None else f"{r.best_ratio:.2f}x", r.goal_text(), r.status()])
    print_table(headers, body)
    for r in rows:
        if r.error or r.note:
            print(f"  {r.name}: {r.error or r.note}")


# ------------------------------------------------------------------ machine
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def gpu_description() -> str:
    if Path("/proc/driver/nvidia/gpus").is_dir():
        return "NVIDIA GPU present (not used by these CPU benchmarks)"
    return "no GPU"


def blas_info() -> list[dict]:
    """threadpoolctl's view of the loaded BLAS / OpenMP pools, or [] without threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:
        return []
    return threadpoolctl.threadpool_info()


def describe_blas(info: list[dict]) -> str:
    parts = []
    for p in info:
        arch = f" kernel {p['architecture']}" if p.get("architecture") else ""
        version = f" {p['version']}" if p.get("version") else f" ({p['prefix']})" if p.get("prefix") else ""
        parts.append(f"{p.get('internal_api')}{version}{arch}, {p.get('num_threads')} threads")
    return "; ".join(parts)


def numpy_blas_fallback() -> str:
    """numpy's build-time BLAS, for machines without threadpoolctl (no kernel or thread count)."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')} (build config; install threadpoolctl for the kernel)"
    except Exception:  # older numpy: no mode="dicts"
        return "unknown (install threadpoolctl)"


def source_state() -> str:
    """The checkout's commit and whether the compiler's sources differ from it (work in progress)."""
    import subprocess

    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "python/alloy", "runtime", "lib")
    n = len(dirty.splitlines())
    return f"source: commit {head}" + (f", {n} uncommitted change(s) under python/alloy, runtime, lib" if n else "")


def machine_lines() -> list[str]:
    """A few lines describing the machine, numpy, torch and their thread pools."""
    import numpy as np

    from alloy import config

    flags = cpu_flags()
    isa = ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags)
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "?"
    lines = [
        f"CPU: {cpu_model()} ({isa}); {usable_cores()} usable cores; {gpu_description()}",
        f"load average at start (1, 5, 15 min): {load}",
        source_state(),
        f"Python {platform.python_version()}, numpy {np.__version__}; "
        f"Alloy CPU pool {config.get().num_threads} threads",
        f"numpy BLAS (this process): {describe_blas(blas_info()) or numpy_blas_fallback()}",
    ]
    overrides = {k: os.environ[k] for k in OPENBLAS_OVERRIDES if k in os.environ}
    lines.append(f"OpenBLAS overrides in this environment: {overrides or 'none'} "
                 "(the matmul peer runs numpy in a subprocess with both unset)")
    try:
        import torch

        blas = "MKL" if torch.backends.mkl.is_available() else "no MKL"
        lines.append(f"torch {torch.__version__} (CPU), {torch.get_num_threads()} intra-op threads, {blas}")
    except ImportError:
        lines.append("torch: not installed")
    return lines
