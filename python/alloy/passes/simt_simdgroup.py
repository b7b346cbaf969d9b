"""tile.dot on Metal: 8x8 simdgroup matrices in convert-tile-to-simt.

For `simt.target = "metal"` the tensor-core path of simt_dot.py runs with
8x8 fragments (`!gpu.mma_matrix<8x8xT, "AOp"|"BOp"|"COp">`, which the MSL
translator maps to `simdgroup_float8x8` / `simdgroup_half8x8` and
`simdgroup_load` / `simdgroup_multiply_accumulate` / `simdgroup_store`).
Metal's multiply-accumulate takes one element type for A, B and C, so the
operands are staged in workgroup memory as the accumulator's type:

    f32 x f32 -> f32, f16 x f32 -> f32, f16 x f16 -> f32   simdgroup_float8x8
                                                        (f16 operands widened to f32 while staged:
                                                         exact, so the products are those of f32)
    f16 x f16 -> f16                                    simdgroup_half8x8 (accumulates in half)

Metal has no element-wise operations on simdgroup matrices, so on Metal a
loop-carried accumulator stays in the accumulator layout only when the loop
yields the dot itself (`acc = tile_dot(a, b, acc)`, what tile-fold-dot-acc makes
of `acc += tile_dot(a, b)`); other arithmetic on a dot result goes through the
blocked layout.
"""
from __future__ import annotations

from alloy.passes.simt_layout import WARP

EDGE = 8  # simdgroup matrices are 8x8
_TYPES = {("f32", "f32", "f32"), ("f16", "f32", "f32"), ("f32", "f16", "f32"), ("f16", "f16", "f32"),
          ("f16", "f16", "f16")}


def simdgroup_ok(nt: int, a_elem: str, b_elem: str, c_elem: str, m: int, n: int, k: int) -> bool:
    """Whether an (m x k) @ (k x n) dot runs on simdgroup matrices in a block of nt threads."""
    if (a_elem, b_elem, c_elem) not in _TYPES or m % EDGE or n % EDGE or k % EDGE:
        return False
    return ((m // EDGE) * (n // EDGE)) % (nt // WARP) == 0


def operand_elem(c_elem: str) -> str:
    """The element type a and b are staged as: the accumulator's (one type per Metal MMA)."""
    return c_elem
