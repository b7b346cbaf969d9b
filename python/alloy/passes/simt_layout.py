"""simt-layout: choose the block size of a tile kernel and the blocked layout of its tiles.

A program instance becomes one thread block of `num_threads` threads. Every
tile of N elements (any shape) gets the same *blocked* layout, a function of
N alone: the tile is read in row-major order, cut into chunks of `vec`
consecutive elements, and chunk j belongs to thread j % threads:

    element e  <->  thread (e // vec) % threads,
                    register (e // (vec * threads)) * vec + e % vec

so each thread holds `regs` elements, in runs of `vec` neighbours (16-byte
global accesses when they are contiguous in memory: vec is 4, or 8 in kernels
whose tile loads/stores move 1- or 2-byte elements). Since the layout
depends only on N and row-major order, expand_dims and reshape move no data;
broadcast and trans do (simt-lower recomputes the source when it is index
arithmetic, else exchanges it through workgroup memory). Tiles smaller than
vec * num_threads are replicated: thread t holds what thread t % threads does.

The pass records its choice on the kernel function as `simt.num_threads`, and
on every op that yields a tile as `simt.layout = "blocked<vec, threads, regs>"`
(a readable trace for tests; simt-lower recomputes layouts from shapes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mlir import ir

from alloy.passes.errors import LoweringError

VEC = 4  # elements per contiguous chunk (at least; up to 8 when the kernel's memory tiles are narrow)
WARP = 32
MAX_THREADS = 256
DOT_THREADS = 128  # warps that share a kernel's tensor-core work


@dataclass(frozen=True)
class Blocked:
    """The blocked layout of an N-element tile (see the module docstring)."""

    n: int
    vec: int
    threads: int
    num_threads: int

    @property
    def regs(self) -> int:
        return self.n // self.threads

    @property
    def replicated(self) -> bool:
        return self.threads < self.num_threads

    def offset(self, k: int) -> int:
        """Flat index of register k of thread 0; thread t adds t * vec."""
        return (k // self.vec) * self.threads * self.vec + k % self.vec

    def __str__(self) -> str:
        return f"blocked<{self.vec}, {self.threads}, {self.regs}>"


def blocked(shape, num_threads: int, vec: int = VEC) -> Blocked:
    n = math.prod(shape)
    if n & (n - 1):
        raise LoweringError(f"the CUDA target needs tiles of a power-of-two size, got shape {tuple(shape)}")
    vec = min(vec, n)
    threads = min(num_threads, n // vec)
    return Blocked(n, vec, threads, num_threads)


def _tile_sizes(op) -> list[int]:
    out = []

    def visit(o):
        for r in o.results:
            if isinstance(r.type, ir.RankedTensorType):
                out.append(math.prod(r.type.shape))
        if o.name == "tile.dot":
            out.append(-math.prod(o.results[0].type.shape))
        return ir.WalkResult.ADVANCE

    op.walk(visit)
    return out


def choose_num_threads(func_op) -> int:
    """Block size: one thread per 8 elements of the largest tile, 32..256; 128 with a tile.dot
    (256 on sm_90a for dots of 32768+ elements: two warpgroups share the accumulator)."""
    sizes = _tile_sizes(func_op.operation)
    dots = [-s for s in sizes if s < 0]
    if dots:
        attrs = func_op.attributes
        hopper = "simt.target" in attrs and ir.StringAttr(attrs["simt.target"]).value == "cuda:sm_90a"
        # Hopper: a warpgroup (128 threads) per 128 accumulator registers' worth of the largest dot
        return DOT_THREADS * 2 if hopper and max(dots) >= 2 * 128 * DOT_THREADS else DOT_THREADS
    largest = max([s for s in sizes if s > 0], default=1)
    nt = WARP
    while nt < MAX_THREADS and nt * 8 < largest:
        nt *= 2
    return nt


_BYTES = {"i1": 1, "i8": 1, "i16": 2, "f16": 2, "bf16": 2, "i32": 4, "f32": 4, "i64": 8, "f64": 8}


def choose_vec(func_op) -> int:
    """Chunk length: 16 bytes of the narrowest element a tile load/store moves (4 to 8 elements;
    4 for `simt.target = "metal"`, whose vectors have at most 4 elements)."""
    from alloy.dialects import tile

    attrs = func_op.attributes
    if "simt.target" in attrs and ir.StringAttr(attrs["simt.target"]).value == "metal":
        return VEC

    sizes = []

    def visit(o):
        if o.name in ("tile.load", "tile.store") and isinstance(o.operands[0].type, ir.RankedTensorType):
            sizes.append(_BYTES.get(str(tile.ptr_elem(o.operands[0].type.element_type)), 4))
        return ir.WalkResult.ADVANCE

    func_op.operation.walk(visit)
    return max(VEC, min(8, 16 // min(sizes, default=4)))


def simt_layout(op, pass_=None) -> None:
    """Pass: annotate each tile kernel with simt.num_threads / simt.vec and its tile ops with simt.layout."""
    from alloy.dialects.tile import kernel_funcs

    module = op.operation if hasattr(op, "operation") else op
    for f in kernel_funcs(module):
        nt, vec = choose_num_threads(f), choose_vec(f)
        with module.context:
            i32 = ir.IntegerType.get_signless(32)
            f.attributes["simt.num_threads"] = ir.IntegerAttr.get(i32, nt)
            f.attributes["simt.vec"] = ir.IntegerAttr.get(i32, vec)

            def visit(o):
                if o.name != "func.func" and len(o.results) and isinstance(o.results[0].type, ir.RankedTensorType):
                    o.attributes["simt.layout"] = ir.StringAttr.get(str(blocked(o.results[0].type.shape, nt, vec)))
                return ir.WalkResult.ADVANCE

            f.operation.walk(visit)
