"""Histogram with atomics: many programs add into shared bins."""
import sys

import numpy as np

import alloy as al


@al.kernel
def histogram(data, bins, N, NBINS: al.constexpr, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    mask = offs < N
    v = al.load(data + offs, mask=mask)
    b = al.minimum(al.maximum(v, 0), NBINS - 1)
    al.atomic_add(bins + b, 1, mask=mask)


def main():
    n, nbins = 500_000, 64
    data = np.random.randint(-5, nbins + 5, size=n).astype(np.int32)
    bins = np.zeros(nbins, np.int32)
    histogram[al.cdiv(n, 256)](data, bins, n, NBINS=nbins)
    ref = np.bincount(np.clip(data, 0, nbins - 1), minlength=nbins)
    ok = np.array_equal(bins, ref)
    print("histogram:", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
