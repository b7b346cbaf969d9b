"""Masked elementwise add: one program per BLOCK elements, the tail masked off."""
import sys

import numpy as np

import alloy as al


@al.kernel
def vector_add(x, y, out: al.output, N, BLOCK: al.constexpr = 1024):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    mask = offs < N
    al.store(out + offs, al.load(x + offs, mask=mask) + al.load(y + offs, mask=mask), mask=mask)


def main():
    n = 1_000_003  # not a multiple of BLOCK: the last program is ragged
    x = np.random.rand(n).astype(np.float32)
    y = np.random.rand(n).astype(np.float32)
    z = vector_add[al.cdiv(n, 1024)](x, y, n)
    ok = np.asarray(z).shape == (n,) and np.allclose(np.asarray(z), x + y)
    print("vector_add:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
