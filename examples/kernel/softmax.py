"""Row-wise softmax two ways: written by hand (one program per row, the row as one tile), and the builtin
`al.softmax`, which picks the tile width (and streams rows too long for one tile) itself."""
import sys

import numpy as np

import alloy as al


@al.kernel
def softmax(x, out: al.output, n_cols, BLOCK: al.constexpr):
    row = al.program_id(0)
    cols = al.arange(0, BLOCK)
    mask = cols < n_cols
    v = al.load(x + row * n_cols + cols, mask=mask, other=-float("inf"))
    v = v - al.max(v, axis=0)
    e = al.exp(v)
    al.store(out + row * n_cols + cols, e / al.sum(e, axis=0), mask=mask)


def main():
    rows, cols = 300, 1000
    x = np.random.randn(rows, cols).astype(np.float32)
    y = np.asarray(softmax[rows](x, cols, BLOCK=1024)).reshape(rows, cols)
    ref = np.exp(x - x.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    builtin = np.asarray(al.softmax(x))  # shapes and BLOCK inferred from x
    ok = np.allclose(y, ref, atol=1e-6) and np.allclose(builtin, ref, atol=1e-6)
    print("softmax (manual and al.softmax):", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
