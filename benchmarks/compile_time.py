"""Compile time of a typical kernel (the softmax example), each measured in a fresh process:

- cold: empty cache directory (`alloy.config.set(cache_dir=tmp)`), first launch = frontend +
  lowering + LLVM + link + load, including the lazy import of the compiler (MLIR);
- cold, compiler imported beforehand: the same, in another fresh process with another empty cache
  whose compiler modules (MLIR bindings, passes, LLVM codegen) were imported before the clock starts;
- warm: a new process with the same cache directory; times only the first launch (kernel
  lookup + load from the disk cache + launch), not interpreter start or imports; and, in other
  such processes, each step of that first launch on its own (printed as a breakdown);
- warm, alloy.config untouched: the same, but the process names its cache directory through
  ALLOY_CACHE_DIR instead of `alloy.config.set` before the clock, so the launch is also the
  first use (and import) of alloy.config, as in a program that never configures Alloy.

- the slowest compiles: test/kernel (which runs every shipped example kernel too) and test/std (the
  builtins library's kernels) in a fresh process
  with an empty cache, once for this machine's CPU and once with cpu_target="x86-64-v3" (AVX2),
  every CPU compilation timed (benchmarks/compile_recorder.py); the goal is under 2 s each.

The processes run with bytecode caches, as an installed package does: PYTHONDONTWRITEBYTECODE is
dropped and PYTHONPYCACHEPREFIX points into a temporary directory, filled by a first, untimed
process (without .pyc files, compiling each module the first launch imports adds ~5 ms).

    python benchmarks/compile_time.py

Prints; asserts nothing.
"""
from __future__ import annotations

import ast
import os
import statistics
import subprocess
import sys
import tempfile

from common import EXAMPLES, ROOT, Row, print_rows, print_table

SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np
import alloy as al
if sys.argv[3] != "untouched":  # else alloy.config is first used (and imported) by the launch
    from alloy import config
    config.set(cache_dir=sys.argv[1])
from softmax import softmax
out = {}
if sys.argv[3] == "preload":
    import importlib
    t0 = time.perf_counter()
    for m in ("alloy.compiler", "alloy.runtime.specializations", "alloy.frontend.codegen", "alloy.dialects.tile", "alloy.passes",
              "alloy.targets.cpu.link", "alloy.targets.cpu.pipeline", "alloy.targets.cpu.llvm_codegen"):
        try:
            importlib.import_module(m)
        except ImportError:
            pass
    out["import"] = time.perf_counter() - t0
x = np.sin(np.arange(64 * 1000, dtype=np.float32)).reshape(64, 1000)
t0 = time.perf_counter()
softmax[64](x, 1000, BLOCK=1024)
t1 = time.perf_counter()
softmax[64](x, 1000, BLOCK=1024)
t2 = time.perf_counter()
out.update(first=t1 - t0, second=t2 - t1)
print(repr(out))
"""

# The measuring scripts import nothing before the clock starts that the launch would import (json,
# numpy.random's hashlib), and print a repr. STEPS times the warm first launch one step at a time
# (the steps Kernel.launch takes on a disk-cache hit).
STEPS = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np
import alloy as al
from alloy import config
config.set(cache_dir=sys.argv[1])
from softmax import softmax
x = np.sin(np.arange(64 * 1000, dtype=np.float32)).reshape(64, 1000)
steps, T = {}, time.perf_counter

def step(name, fn):
    t = T()
    r = fn()
    steps[name] = T() - t
    return r

step("import alloy.runtime.native (the extension)", lambda: __import__("alloy.runtime.native"))
cache = step("import alloy.runtime.cache (builtin sha256)", lambda: __import__("alloy.runtime.cache").runtime.cache)
C = step("import alloy.runtime.specializations (the rest)",
         lambda: __import__("alloy.runtime.specializations").runtime.specializations)
step("import alloy.runtime.helpers", lambda: __import__("alloy.runtime.helpers"))
spec, host = step("bind + specialise", lambda: softmax.specialize(softmax.bind((x, 1000), {"BLOCK": 1024})))
h = step("kernel digest (source text, helpers, globals)", lambda: softmax.source_hash)
fp = step("compiler_fingerprint() (stat + memo)", C.compiler_fingerprint)
cpu = step("host_cpu() (/proc/cpuinfo)", cache.host_cpu)
step("cache_key()", lambda: cache.cache_key(h, spec.key(), "cpu", fp, cpu))
src = step("FunctionSource (unparsed)", lambda: softmax.source)
c = step("compile_spec hit: read metadata + dlopen", lambda: C.compile_spec(src, h, spec))
softmax._compiled[(spec.key(), "cpu", config.get().cpu_target)] = c
step("launch (output allocation, shape inference, run)", lambda: softmax[64](x, 1000, BLOCK=1024))
print(repr(steps))
"""


def _env(pycache: str, cache_dir: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    env["ALLOY_CACHE_DIR"] = cache_dir
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _run(cache_dir: str, mode: str, pycache: str, script: str = SCRIPT) -> dict:
    proc = subprocess.run([sys.executable, "-c", script, cache_dir, str(EXAMPLES), mode], env=_env(pycache, cache_dir),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"the {mode} measurement process failed: {tail}")
    return ast.literal_eval(proc.stdout.strip())


def _breakdown(samples: list[dict]) -> dict[str, float]:
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def run(warm_runs: int = 9, breakdown: dict | None = None) -> list[Row]:
    """The rows; with `breakdown` (a dict), also fills it with the median seconds of each step of
    the warm first launch, from `warm_runs` more processes."""
    with tempfile.TemporaryDirectory() as pycache:
        with tempfile.TemporaryDirectory() as prime:
            _run(prime, "preload", pycache)  # fills the bytecode caches (stdlib, numpy, alloy, MLIR)
            _run(prime, "cold", pycache)
        with tempfile.TemporaryDirectory() as other:
            preloaded = _run(other, "preload", pycache)
        with tempfile.TemporaryDirectory() as cache_dir:
            cold = _run(cache_dir, "cold", pycache)
            warm = [_run(cache_dir, "warm", pycache) for _ in range(warm_runs)]
            untouched = [_run(cache_dir, "untouched", pycache)["first"] for _ in range(warm_runs)]
            if breakdown is not None:
                breakdown.update(_breakdown([_run(cache_dir, "steps", pycache, STEPS) for _ in range(warm_runs)]))
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
        Row("softmax first launch from disk cache (fresh process, alloy.config first used by it)",
            statistics.median(untouched), None, None, "max", 5e-3,
            "the cache directory from ALLOY_CACHE_DIR: the launch also imports alloy.config and, through it, "
            "pathlib"),
    ]


COMPILE_GOAL_S = 2.0


def compile_times(cpu_target: str) -> list[dict]:
    """Every CPU compilation of a run of test/kernel and test/std with `cpu_target`: [{entry, test, seconds, ...}]."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "compiles.jsonl")
        env = {k: v for k, v in os.environ.items()}
        env.update(ALLOY_CACHE_DIR=os.path.join(tmp, "cache"), ALLOY_CPU_TARGET=cpu_target)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT / "python"),
                                             env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "compile_recorder",
                               f"--compile-log={log}", str(ROOT / "test" / "kernel"), str(ROOT / "test" / "std")],
                              cwd=ROOT, env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"test/kernel + test/std with cpu_target={cpu_target} failed: {tail}")
        import json

        with open(log) as f:
            return [json.loads(line) for line in f]


def slowest_rows(targets=("native", "x86-64-v3"), count: int = 5) -> tuple[list[Row], list[list[str]]]:
    """(a summary Row per cpu_target, a table of the `count` slowest compiles of each)."""
    rows, table = [], []
    for target in targets:
        times = sorted(compile_times(target), key=lambda r: -r["seconds"])
        over = sum(r["seconds"] > COMPILE_GOAL_S for r in times)
        rows.append(Row(f"slowest CPU compile of test/kernel + examples + test/std, cpu_target={target}", times[0]["seconds"],
                        None, None, "max", COMPILE_GOAL_S,
                        f"{len(times)} compiles, median {statistics.median(r['seconds'] for r in times) * 1e3:.0f} ms, "
                        f"{over} over {COMPILE_GOAL_S:.0f} s; slowest: {times[0]['entry']} in {times[0]['test']}"))
        plain = [r for r in times if not r.get("listing")]  # as a launch pays it: no second assembly emission
        if plain:
            rows.append(Row(f"slowest CPU compile without a stage listing, cpu_target={target}", plain[0]["seconds"],
                            None, None, "max", COMPILE_GOAL_S, f"{plain[0]['entry']} in {plain[0]['test']}"))
        table += [[target, f"{r['seconds']:.2f} s", "yes" if r.get("listing") else "no", r["entry"], r["test"]]
                  for r in times[:count]]
    return rows, table


def print_breakdown(steps: dict[str, float]) -> None:
    rows = [[k, f"{v * 1e3:.2f} ms"] for k, v in steps.items()]
    rows.append(["sum of the steps", f"{sum(steps.values()) * 1e3:.2f} ms"])
    print_table(["warm first launch, step by step (median of fresh processes)", "time"], rows)


if __name__ == "__main__":
    steps: dict[str, float] = {}
    rows = run(breakdown=steps)
    slow, table = slowest_rows()
    print_rows(rows + slow)
    print()
    print_breakdown(steps)
    print()
    print_table(["cpu_target", "compile", "stage listing", "kernel", "test"], table)
