"""Run every CPU benchmark and print one table: Alloy vs its peer, the speed ratio, the goal, met or not.

    python benchmarks/run_all.py        (or: make bench)

Peers are measured in the same run, interleaved with Alloy where they share a process. Ratios
only; nothing asserts. Takes about a minute on 2 cores (longer on a first run, which compiles
the kernels into the disk cache).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import builtin_calls  # noqa: E402
import std_builtins  # noqa: E402
import compile_time  # noqa: E402
import fusion  # noqa: E402
import launch_path  # noqa: E402
import matmul  # noqa: E402
import softmax  # noqa: E402
import vector_add  # noqa: E402
from common import Row, machine_lines, print_rows  # noqa: E402

SUITES = (vector_add, softmax, matmul, std_builtins, builtin_calls, fusion, compile_time, launch_path)


def main() -> None:
    t0 = time.perf_counter()
    import torch  # noqa: F401  (loaded first so the machine description shows its threads)

    for line in machine_lines():
        print(line)
    print()
    rows = []
    for suite in SUITES:
        print(f"running {suite.__name__} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(suite.run())
        except Exception as e:  # a kernel that fails to compile must not hide the other numbers
            rows.append(Row.failed(suite.__name__, e))
    print_rows(rows)
    print("\nnative launch detail (benchmarks/launch_overhead.py --iters 5000):", flush=True)
    subprocess.run([sys.executable, str(Path(__file__).with_name("launch_overhead.py")), "--iters", "5000"],
                   check=False)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.0f} s; load average at end (1, 5, 15 min): {load}")


if __name__ == "__main__":
    main()
