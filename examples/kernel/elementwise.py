"""Fused activations (GELU, sigmoid, SiLU) in one pass over the data, with an @al.func helper."""
import math
import sys

import numpy as np

import alloy as al


@al.func
def gelu(x):
    return 0.5 * x * (1.0 + al.erf(x * 0.7071067811865476))


@al.kernel
def activations(x, g: al.output, s: al.output, si: al.output, N, BLOCK: al.constexpr = 512):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    mask = offs < N
    v = al.load(x + offs, mask=mask)
    al.store(g + offs, gelu(v), mask=mask)
    al.store(s + offs, al.sigmoid(v), mask=mask)
    al.store(si + offs, v * al.sigmoid(v), mask=mask)


def main():
    n = 100_000
    x = (np.random.randn(n) * 3).astype(np.float32)
    g, s, si = activations[al.cdiv(n, 512)](x, n)
    erf = np.vectorize(math.erf)
    ref_g = 0.5 * x * (1 + erf(x / math.sqrt(2)))
    ref_s = 1 / (1 + np.exp(-x.astype(np.float64)))
    ok = (np.allclose(np.asarray(g), ref_g, atol=1e-5) and np.allclose(np.asarray(s), ref_s, atol=1e-6)
          and np.allclose(np.asarray(si), x * ref_s, atol=1e-5))
    print("elementwise:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
