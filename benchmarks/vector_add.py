"""vector_add, 16M float32: Alloy's example kernel vs numpy `np.add(x, y, out=z)` and `x + y`.

    python benchmarks/vector_add.py

Prints ratios (numpy time / Alloy time); asserts nothing.
"""
from __future__ import annotations

import numpy as np

import alloy as al
from common import Row, compare, import_example, print_rows

N = 1 << 24
BLOCKS = (16, 64, 256, 1024, 4096)  # 1024 is the example's default


def aligned_copy(a: np.ndarray, align: int = 64) -> np.ndarray:
    """A copy of 1-D `a` starting on an `align`-byte boundary (numpy's large arrays start 16 bytes past one)."""
    raw = np.empty(a.size + align // a.itemsize, a.dtype)
    skip = (-raw.ctypes.data % align) // a.itemsize
    out = raw[skip:skip + a.size]
    out[:] = a
    return out


def run(repeat: int = 15) -> list[Row]:
    vector_add = import_example("vector_add").vector_add
    rng = np.random.default_rng(0)
    x = rng.random(N, dtype=np.float32)
    y = rng.random(N, dtype=np.float32)
    z = np.empty_like(x)

    def launch(block, out=None):
        kw = {} if out is None else {"out": out}
        return vector_add[al.cdiv(N, block)](x, y, N, BLOCK=block, **kw)

    ok = all(np.array_equal(np.asarray(launch(b)), x + y) for b in BLOCKS)
    check = "" if ok else "WRONG RESULT; "
    fns = {b: (lambda b=b: launch(b, z)) for b in BLOCKS}
    fns["numpy"] = lambda: np.add(x, y, out=z)
    t = compare(fns, repeat=repeat)
    best = min(BLOCKS, key=lambda b: t[b])
    xa, ya, za = aligned_copy(x), aligned_copy(y), aligned_copy(z)
    diag = (64, 1024)
    t_al = compare({b: (lambda b=b: vector_add[al.cdiv(N, b)](xa, ya, N, BLOCK=b, out=za)) for b in diag}
                   | {"numpy": lambda: np.add(xa, ya, out=za)}, repeat=repeat)
    t_alloc = compare({"alloy": lambda: launch(1024), "numpy": lambda: x + y}, repeat=repeat)
    sweep = ", ".join(f"BLOCK={b}: {t[b] * 1e3:.1f} ms" for b in BLOCKS)
    return [
        Row("vector_add 16M f32, out given (BLOCK=1024)", t[1024], "np.add(x, y, out=z)", t["numpy"], "speed", 0.9,
            f"{check}sweep {sweep}"),
        Row(f"vector_add 16M f32, out given (best BLOCK={best})", t[best], "np.add(x, y, out=z)", t["numpy"],
            "speed", 0.9),
        *(Row(f"vector_add 16M f32, 64-byte-aligned arrays (diagnostic, BLOCK={b})", t_al[b],
              "np.add(x, y, out=z)", t_al["numpy"], "speed", None,
              "" if b != diag[0] else
              f"numpy's arrays start at {x.ctypes.data % 64} mod 64 bytes; here all three start at 0 mod 64")
          for b in diag),
        Row("vector_add 16M f32, output allocated (BLOCK=1024)", t_alloc["alloy"], "x + y", t_alloc["numpy"],
            "speed", 0.9),
    ]


if __name__ == "__main__":
    print_rows(run())
