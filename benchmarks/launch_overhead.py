"""Per-launch cost of an empty CPU kernel from Python (alloy._runtime.launch),
next to a direct ctypes call of the same C function as the peer, and the time
to load a cached kernel from disk in a fresh process. Prints; asserts nothing.

    python benchmarks/launch_overhead.py [--iters N]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from alloy.runtime import native
from alloy.runtime.cache import KernelCache, cache_key

EMPTY = r"""
#include <stdint.h>
void empty(const int64_t *args, int64_t b, int64_t e, int64_t g0, int64_t g1, int64_t g2) {}
"""


def per_call_us(fn, iters: int) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        best = min(best, (time.perf_counter() - t0) / iters)
    return best * 1e6


def build(tmp: Path) -> Path:
    (tmp / "empty.c").write_text(EMPTY)
    so = tmp / "empty.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", str(tmp / "empty.c"), "-o", str(so)], check=True)
    return so


def cache_load_ms(cache_dir: Path, key: str) -> str:
    code = (
        "import time\nt0 = time.perf_counter()\nfrom alloy.runtime.cache import KernelCache\n"
        "t1 = time.perf_counter()\n"
        f"k = KernelCache({str(cache_dir)!r}).get({key!r})\nt2 = time.perf_counter()\n"
        "assert k is not None\n"
        "print(f'{(t1 - t0) * 1e3:.2f} ms import, {(t2 - t1) * 1e3:.2f} ms get')"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20000)
    iters = ap.parse_args().iters
    with tempfile.TemporaryDirectory() as d:
        so = build(Path(d))
        fn = native.dlsym(native.dlopen(str(so)), "empty")
        threads = native.get_num_threads()
        slots = np.zeros(4, np.int64)
        packed = slots.tobytes()
        peer = ctypes.CDLL(str(so)).empty
        peer.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 5
        ptr = slots.ctypes.data

        peer_us = per_call_us(lambda: peer(ptr, 0, 1, 1, 1, 1), iters)
        rows = [
            ("ctypes direct call (peer)", peer_us),
            ("launch grid 1 (inline), int64 array args", per_call_us(lambda: native.launch(fn, slots, 1, 1, 1), iters)),
            ("launch grid 1 (inline), bytes args", per_call_us(lambda: native.launch(fn, packed, 1, 1, 1), iters)),
            ("launch grid 1, args packed per call (struct)",
             per_call_us(lambda: native.launch(fn, struct.pack("4q", ptr, 1, 2, 3), 1, 1, 1), iters)),
            (f"launch grid {2 * threads} ({threads} threads)", per_call_us(lambda: native.launch(fn, slots, 2 * threads, 1, 1), iters)),
            ("launch grid 4096x1x1 (pool)", per_call_us(lambda: native.launch(fn, slots, 4096, 1, 1), iters)),
        ]
        print(f"empty-kernel launch cost, {threads} pool threads, best of 5 x {iters} calls")
        for name, us in rows:
            print(f"  {name:48s} {us:8.2f} us   x{us / peer_us:5.2f} of ctypes")

        key = cache_key("launch_overhead", "empty")
        KernelCache(Path(d) / "cache").put(key, so.read_bytes(), {"entry": "empty"})
        print(f"cached kernel load in a fresh process: {cache_load_ms(Path(d) / 'cache', key)}")


if __name__ == "__main__":
    main()
