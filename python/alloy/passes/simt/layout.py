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
broadcast and trans do (convert-tile-to-simt recomputes the source when it is index
arithmetic, else exchanges it through workgroup memory). Tiles smaller than
vec * num_threads are replicated: thread t holds what thread t % threads does.

The pass records its choice on the kernel function as `simt.num_threads`, and
on every op that yields a tile as `simt.layout = "blocked<vec, threads, regs>"`
(a readable trace for tests; convert-tile-to-simt recomputes layouts from shapes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.simt.target import SimtTarget, for_function
from alloy.passes.simt.values import byte_size, mem_elem

VEC = 4  # elements per contiguous chunk (at least; up to the target's max_vec when the memory tiles are narrow)
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
        raise LoweringError(f"the GPU targets need tiles of a power-of-two size, got shape {tuple(shape)}")
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


def choose_num_threads(func_op, target: SimtTarget) -> int:
    """Block size: one thread per 8 elements of the largest tile, 32..256; 128 with a tile.dot
    (256 with warpgroup MMA for dots of 32768+ elements: two warpgroups share the accumulator)."""
    if "tile.threads" in func_op.attributes:  # the launch's threads=
        return ir.IntegerAttr(func_op.attributes["tile.threads"]).value
    sizes = _tile_sizes(func_op.operation)
    dots = [-s for s in sizes if s < 0]
    if dots:
        # warpgroup MMA: a warpgroup (128 threads) per 128 accumulator registers' worth of the largest dot
        big = max(dots) >= 2 * 128 * DOT_THREADS
        return DOT_THREADS * 2 if target.warpgroup_mma and big else DOT_THREADS
    largest = max([s for s in sizes if s > 0], default=1)
    nt = WARP
    while nt < MAX_THREADS and nt * 8 < largest:
        nt *= 2
    return nt


def choose_vec(func_op, target: SimtTarget) -> int:
    """Chunk length: 16 bytes of the narrowest element a tile load/store moves (4 elements at least,
    the target's max_vec at most)."""
    sizes = []

    def visit(o):
        if o.name in ("tile.load", "tile.store") and isinstance(o.operands[0].type, ir.RankedTensorType):
            sizes.append(byte_size(mem_elem(str(tile.ptr_elem(o.operands[0].type.element_type)))))
        return ir.WalkResult.ADVANCE

    func_op.operation.walk(visit)
    return max(VEC, min(target.max_vec, 16 // min(sizes, default=4)))


def simt_layout(op, target: SimtTarget | None = None) -> None:
    """Pass: annotate each tile kernel with simt.num_threads / simt.vec and its tile ops with simt.layout."""
    module = op.operation if hasattr(op, "operation") else op
    for f in tile.kernel_funcs(module):
        gpu = for_function(f, target)
        nt, vec = choose_num_threads(f, gpu), choose_vec(f, gpu)
        with module.context:
            i32 = ir.IntegerType.get_signless(32)
            f.attributes["simt.num_threads"] = ir.IntegerAttr.get(i32, nt)
            f.attributes["simt.vec"] = ir.IntegerAttr.get(i32, vec)

            def visit(o):
                if o.name != "func.func" and len(o.results) and isinstance(o.results[0].type, ir.RankedTensorType):
                    o.attributes["simt.layout"] = ir.StringAttr.get(str(blocked(o.results[0].type.shape, nt, vec)))
                return ir.WalkResult.ADVANCE

            f.operation.walk(visit)
