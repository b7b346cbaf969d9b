"""A pytest plugin for benchmarks/compile_time.py: times every CPU kernel compilation of a test run.

    python -m pytest -p compile_recorder --compile-log=FILE test/kernel

Each compilation (lowering, LLVM, link) appends one JSON line to FILE: the kernel's entry name,
the test that compiled it, the cpu_target, the seconds it took and whether it also made a listing
of every stage (`keep_stages`: with a link, the assembly is emitted a second time).
"""
from __future__ import annotations

import json
import os
import time


def pytest_addoption(parser):
    parser.addoption("--compile-log", required=True, help="file to append one JSON line per compilation to")


def pytest_configure(config):
    import alloy.config
    import alloy.targets.cpu.link as link

    path = config.getoption("--compile-log")
    real = link.compile_module

    def timed(module, machine, *args, **kwargs):
        t0 = time.perf_counter()
        art = real(module, machine, *args, **kwargs)
        seconds = time.perf_counter() - t0
        with open(path, "a") as f:
            f.write(json.dumps({"entry": art.entry, "seconds": seconds, "cpu_target": machine.name,
                                "test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0],
                                "listing": bool(kwargs.get("keep_stages")),
                                "configured": alloy.config.get().cpu_target}) + "\n")
        return art

    link.compile_module = timed
