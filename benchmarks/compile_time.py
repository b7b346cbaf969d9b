"""Compile time of a typical kernel (the softmax example), each measured in a fresh process:

- cold: empty cache directory (`alloy.config.set(cache_dir=tmp)`), first launch = frontend +
  lowering + LLVM + link + load, including the lazy import of the compiler (MLIR);
- cold, compiler imported beforehand: the same, in another fresh process with another empty cache
  whose compiler modules (MLIR bindings, passes, LLVM codegen) were imported before the clock starts;
- warm: a new process with the same cache directory; times only the first launch (kernel
  lookup + load from the disk cache + launch), not interpreter start or imports.

    python benchmarks/compile_time.py

Prints; asserts nothing.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from common import EXAMPLES, ROOT, Row, print_rows

SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np
import alloy as al
from alloy import config
config.set(cache_dir=sys.argv[1])
from softmax import softmax
out = {}
if sys.argv[3] == "preload":
    import importlib
    t0 = time.perf_counter()
    for m in ("alloy.compiler", "alloy.frontend.codegen", "alloy.dialects.tile", "alloy.passes",
              "alloy.targets.cpu.link", "alloy.targets.cpu.pipeline", "alloy.targets.cpu.llvm_codegen"):
        try:
            importlib.import_module(m)
        except ImportError:
            pass
    out["import"] = time.perf_counter() - t0
x = np.random.default_rng(0).standard_normal((64, 1000), dtype=np.float32)
t0 = time.perf_counter()
softmax[64](x, 1000, BLOCK=1024)
t1 = time.perf_counter()
softmax[64](x, 1000, BLOCK=1024)
t2 = time.perf_counter()
out.update(first=t1 - t0, second=t2 - t1)
print(json.dumps(out))
"""


def _run(cache_dir: str, mode: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, cache_dir, str(EXAMPLES), mode], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"the {mode} measurement process failed: {tail}")
    return json.loads(proc.stdout)


def run(warm_runs: int = 9) -> list[Row]:
    with tempfile.TemporaryDirectory() as other:
        preloaded = _run(other, "preload")
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = _run(cache_dir, "cold")
        warm = [_run(cache_dir, "warm") for _ in range(warm_runs)]
    warm_first = statistics.median(w["first"] for w in warm)
    warm_second = statistics.median(w["second"] for w in warm)
    return [
        Row("compile softmax, cold (fresh process, empty cache, incl. compiler import)", cold["first"], None, None,
            "max", None),
        Row("compile softmax, cold (compiler imported beforehand)", preloaded["first"], None, None, "max", None,
            f"importing the compiler's modules took {preloaded['import'] * 1e3:.0f} ms in that process"),
        Row("softmax first launch from disk cache (fresh process)", warm_first, None, None, "max", 5e-3,
            f"median of {warm_runs} processes; the second launch in those processes takes "
            f"{warm_second * 1e6:.0f} us (64x1000 rows)"),
    ]


if __name__ == "__main__":
    print_rows(run())
