"""Alloy's typed configuration: one process-wide `Config`.

    import alloy.config
    alloy.config.get().cache_dir
    alloy.config.set(num_threads=4)

Defaults come from the machine; three environment variables override them, read
once when the configuration is first built (these are the only ones Alloy reads):

    ALLOY_CACHE_DIR     directory of the compiled-kernel disk cache
                        (default: ~/.cache/alloy)
    ALLOY_NUM_THREADS   threads of the CPU runtime's pool, the caller included
                        (default: the CPUs this process may run on)
    ALLOY_CPU_TARGET    the CPU the CPU target compiles for (default: native);
                        CI forces x86-64-v3 to test the AVX2 code on any host

`set()` changes the live configuration; parts of Alloy that hold state built
from it (the native thread pool) follow through `subscribe()`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from collections.abc import Callable

TARGETS = ("cpu", "cuda", "metal")
CUDA_ARCHS = ("sm_80", "sm_86", "sm_89", "sm_90", "sm_90a")  # PTX targets of the CUDA pipeline
# CPUs the CPU target compiles for: this machine's CPU, the x86-64 levels of AVX2 laptops and AVX-512
# servers, and AArch64 (Apple Silicon); code for a CPU other than the host's can be inspected, not run
CPU_TARGETS = ("native", "x86-64-v3", "x86-64-v4", "aarch64")


@dataclasses.dataclass(frozen=True)
class Config:
    """Process-wide settings of the kernel compiler and runtime."""

    cache_dir: Path
    num_threads: int
    target: str = "cpu"
    cuda_arch: str = "sm_90a"  # H100/H200; sm_90a adds the warpgroup-MMA tile_dot pipeline, older chips use WMMA
    cpu_target: str = "native"
    lazy: bool = True  # CPU launches return pending buffers that run, fused, when read (runtime/lazy.py)

    def __post_init__(self) -> None:
        if not isinstance(self.cache_dir, (str, os.PathLike)):
            raise TypeError(f"Config.cache_dir: expected a path, got {type(self.cache_dir).__name__}")
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int):
            raise TypeError(f"Config.num_threads: expected an int, got {type(self.num_threads).__name__}")
        if self.num_threads < 1:
            raise ValueError(f"Config.num_threads: must be >= 1, got {self.num_threads}")
        if self.target not in TARGETS:
            raise ValueError(f"Config.target: expected one of {TARGETS}, got {self.target!r}")
        if self.cuda_arch not in CUDA_ARCHS:
            raise ValueError(f"Config.cuda_arch: expected one of {CUDA_ARCHS}, got {self.cuda_arch!r}")
        if self.cpu_target not in CPU_TARGETS:
            raise ValueError(f"Config.cpu_target: expected one of {CPU_TARGETS}, got {self.cpu_target!r}")
        if not isinstance(self.lazy, bool):
            raise TypeError(f"Config.lazy: expected a bool, got {type(self.lazy).__name__}")


_current: Config | None = None
_subscribers: list[Callable[[Config], None]] = []


def _from_env() -> Config:
    cache_dir = os.environ.get("ALLOY_CACHE_DIR") or Path.home() / ".cache" / "alloy"
    threads_env = os.environ.get("ALLOY_NUM_THREADS")
    if threads_env:
        try:
            num_threads = int(threads_env)
        except ValueError:
            raise ValueError(f"ALLOY_NUM_THREADS: expected a positive integer, got {threads_env!r}") from None
        if num_threads < 1:
            raise ValueError(f"ALLOY_NUM_THREADS: expected a positive integer, got {threads_env!r}")
    elif hasattr(os, "sched_getaffinity"):
        num_threads = len(os.sched_getaffinity(0)) or 1
    else:
        num_threads = os.cpu_count() or 1
    cpu_target = os.environ.get("ALLOY_CPU_TARGET") or "native"
    if cpu_target not in CPU_TARGETS:
        raise ValueError(f"ALLOY_CPU_TARGET: expected one of {CPU_TARGETS}, got {cpu_target!r}")
    return Config(cache_dir=Path(cache_dir), num_threads=num_threads, cpu_target=cpu_target)


def get() -> Config:
    """The live configuration (built from defaults and env on first use)."""
    global _current
    if _current is None:
        _current = _from_env()
    return _current


def set(**changes) -> Config:  # noqa: A001 - the public name is alloy.config.set
    """Replace fields of the live configuration; returns the new one.

    Unknown field names raise TypeError; bad values raise as `Config` does.
    """
    global _current
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(name for name in changes if name not in fields)
    if unknown:
        raise TypeError(f"alloy.config.set: unknown field(s) {unknown}; fields are {sorted(fields)}")
    _current = dataclasses.replace(get(), **changes)
    for callback in list(_subscribers):
        callback(_current)
    return _current


def subscribe(callback: Callable[[Config], None]) -> None:
    """Call `callback(config)` after every `set()`."""
    _subscribers.append(callback)
