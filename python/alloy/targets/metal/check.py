"""`check_msl`: compile MSL with the host C++ compiler against the Metal-stdlib shim header.

The shim (include/alloy/metal/metal_stdlib) declares the Metal types and functions the
translator emits with the Metal Shading Language Specification's signatures. Passing the check
means the source is well-formed and well-typed against those declarations; it is not a Metal
compile.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FLAGS = ("-fsyntax-only", "-std=c++17", "-x", "c++", "-Wno-attributes", "-Wno-unknown-attributes")


class MSLCheckError(Exception):
    """The host compiler rejected MSL source; the message holds its diagnostics."""


def shim_path() -> Path:
    """The `metal_stdlib` shim: installed beside the package, or in the source tree's include/."""
    here = Path(__file__).resolve()
    candidates = [
        here.parents[2] / "include" / "metal" / "metal_stdlib",  # installed: alloy/include/metal/
        here.parents[4] / "include" / "alloy" / "metal" / "metal_stdlib",  # source tree
    ]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError("Metal-stdlib shim not found; looked in " + ", ".join(map(str, candidates)))


def check_msl(source: str, *, compiler: str | None = None, name: str = "kernel.metal") -> None:
    """Syntax- and type-check `source` with `compiler` (default: `c++` on PATH); raise MSLCheckError."""
    cxx = compiler or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        raise FileNotFoundError("no C++ compiler (c++, g++ or clang++) on PATH for the MSL shim check")
    shim = shim_path()
    cmd = [cxx, *FLAGS, "-I", str(shim.parent), "-include", str(shim), "-"]
    proc = subprocess.run(cmd, input=source, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        diagnostics = proc.stderr.replace("<stdin>", name)
        raise MSLCheckError(f"{name}: MSL rejected by {Path(cxx).name} against the Metal-stdlib shim:\n{diagnostics}")
