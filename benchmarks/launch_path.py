"""Launch cost of an empty kernel: the full `kernel[grid](...)` Python path, next to the bare native
launch and a ctypes call of an empty C function (the peer), reusing launch_overhead.py's helpers.

    python benchmarks/launch_path.py

For the detailed native-launch table run benchmarks/launch_overhead.py. Prints; asserts nothing.
"""
from __future__ import annotations

import ctypes
import tempfile
from array import array
from pathlib import Path

import numpy as np

import alloy as al
from common import Row, per_call_time, print_rows
from launch_overhead import build


@al.kernel
def empty():
    pass


@al.kernel
def empty_args(x, y, N, BLOCK: al.constexpr = 1024):
    pass


def run(iters: int = 20000) -> list[Row]:
    from alloy.runtime import native

    with tempfile.TemporaryDirectory() as d:
        so = build(Path(d))
        peer = ctypes.CDLL(str(so)).empty
        peer.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 5
        slots = np.zeros(4, np.int64)
        ptr = slots.ctypes.data
        peer_s = per_call_time(lambda: peer(ptr, 0, 1, 1, 1, 1), iters=iters)

    spec, _ = empty.specialize(empty.bind((), {}))
    fn = empty.compiled_for(spec).fn_addr  # compiles, or loads from the disk cache
    packed = array("q", [0])
    native_s = per_call_time(lambda: native.launch(fn, packed, 1, 1, 1), iters=iters)
    full_s = per_call_time(lambda: empty[1](), iters=iters)
    x = np.zeros(1024, np.float32)
    empty_args[1](x, x, 1024)
    args_s = per_call_time(lambda: empty_args[1](x, x, 1024), iters=iters // 4)
    return [
        Row("launch, native only (empty kernel, grid 1)", native_s, "ctypes call", peer_s, "max", None),
        Row("launch, full kernel[grid]() path (empty kernel, no args)", full_s, "ctypes call", peer_s, "max", 20e-6),
        Row("launch, full kernel[grid](x, y, N) path (2 arrays, 1 int)", args_s, "ctypes call", peer_s, "max", 20e-6),
    ]


if __name__ == "__main__":
    print_rows(run())
