"""Row softmax, 4096x1024 float32: Alloy's one-program-per-row example kernel vs `torch.softmax(x, dim=1)`.

    python benchmarks/softmax.py

torch runs on the CPU with its default intra-op threads. Prints ratios; asserts nothing.
"""
from __future__ import annotations

import numpy as np

from common import Row, compare, import_example, print_rows

ROWS, COLS = 4096, 1024


def run(repeat: int = 30) -> list[Row]:
    import torch

    softmax = import_example("softmax").softmax
    x = np.random.default_rng(0).standard_normal((ROWS, COLS), dtype=np.float32)
    xt = torch.from_numpy(x)
    out = np.empty_like(x)

    ref = torch.softmax(xt, dim=1).numpy()
    got = np.asarray(softmax[ROWS](x, COLS, BLOCK=COLS)).reshape(ROWS, COLS)
    check = "" if np.allclose(got, ref, atol=1e-6) else "WRONG RESULT; "
    t = compare({
        "alloy out": lambda: softmax[ROWS](x, COLS, BLOCK=COLS, out=out),
        "alloy alloc": lambda: softmax[ROWS](x, COLS, BLOCK=COLS),
        "torch": lambda: torch.softmax(xt, dim=1),
    }, repeat=repeat)
    peer = f"torch.softmax ({torch.get_num_threads()} threads)"
    return [
        Row("softmax 4096x1024 f32, output allocated", t["alloy alloc"], peer, t["torch"], "speed", 1.0,
            f"{check}torch allocates its output too"),
        Row("softmax 4096x1024 f32, out given", t["alloy out"], peer, t["torch"], "speed", 1.0),
    ]


if __name__ == "__main__":
    print_rows(run())
