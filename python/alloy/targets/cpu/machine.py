"""The CPU the CPU target compiles for: LLVM triple, CPU name and features, and the passes' description.

`cpu_machine("native")` is this machine (LLVM's host CPU and features);
"x86-64-v3" (AVX2, FMA, F16C) and "x86-64-v4" (AVX-512) are the x86-64
micro-architecture levels; "aarch64" is an Apple Silicon Mac (apple-m1, NEON).
Code for a CPU this machine cannot execute compiles (al.inspect, the AArch64
cross-compile check) but does not load.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from functools import lru_cache

from alloy.passes.vector.target import AVX2, AVX512, NEON, VectorTarget

_X86_V4_FEATURES = ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl")
_X86_V3_FEATURES = ("avx2", "fma", "f16c", "bmi2", "movbe")


@dataclass(frozen=True)
class CpuMachine:
    """An LLVM code-generation target and the vector lowering's description of it."""

    name: str  # the cpu_target setting
    triple: str
    cpu: str
    features: str  # LLVM feature string ("" = implied by `cpu`)
    description: VectorTarget
    runs_here: bool  # this machine can execute the code


def _host_arch() -> str:
    machine = platform.machine().lower()
    return "aarch64" if machine in ("aarch64", "arm64") else "x86_64" if machine in ("x86_64", "amd64") else machine


def _x86_level(features: set[str]) -> int:
    if all("+" + f in features for f in _X86_V4_FEATURES):
        return 4
    return 3 if all("+" + f in features for f in _X86_V3_FEATURES) else 2


@lru_cache(maxsize=None)
def cpu_machine(name: str) -> CpuMachine:
    """The machine for a `cpu_target` setting (see alloy.config.CPU_TARGETS)."""
    from alloy.targets.cpu.llvm_codegen import host_target

    triple, cpu, features = host_target()
    host_features = set(features.split(","))
    arch = _host_arch()
    if name == "native":
        if arch == "aarch64":
            like = NEON
        elif _x86_level(host_features) == 4:
            like = AVX512
        elif "+avx" in host_features:
            like = VectorTarget(name, 32, 16, (4, 8) if "+avx2" in host_features else ())
        else:
            like = VectorTarget(name, 16, 16, ())
        return CpuMachine(name, triple, cpu, features, replace(like, name=name), True)
    if name in ("x86-64-v3", "x86-64-v4"):
        x86_triple = triple if arch == "x86_64" else "x86_64-unknown-linux-gnu"
        level = int(name[-1])
        runs = arch == "x86_64" and _x86_level(host_features) >= level
        return CpuMachine(name, x86_triple, name, "", AVX512 if level == 4 else AVX2, runs)
    if name == "aarch64":
        if arch == "aarch64":
            return CpuMachine(name, triple, "apple-m1", "", NEON, True)
        return CpuMachine(name, "arm64-apple-macosx14.0", "apple-m1", "", NEON, False)
    from alloy.config import CPU_TARGETS

    raise ValueError(f"cpu_target: expected one of {CPU_TARGETS}, got {name!r}")


def configured_machine() -> CpuMachine:
    """The machine of the live configuration's `cpu_target`."""
    from alloy import config

    return cpu_machine(config.get().cpu_target)
