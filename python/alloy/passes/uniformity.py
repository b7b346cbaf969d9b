"""Which values of a SIMT kernel differ between the threads of a threadgroup, and where sync ops may sit.

A value is *varying* when it depends on `tile.thread_id`, on a shared or local
array (memref.load), on a SIMD-group op (shuffle, reduce, the simd matrices)
or on control flow whose condition is varying; everything else (arguments,
program ids, constants, loads through uniform pointers) is *uniform*.
Loop-carried values are solved to a fixed point. *Sync ops* (tile.barrier,
tile.simd_shuffle, tile.simd_reduce) need every thread of the threadgroup
(of the SIMD group, for shuffles and reductions) to reach them together, so
they may only sit under uniform control flow; `check_sync_placement` raises
LoweringError naming the op otherwise. The CPU's threads-to-loops pass splits
kernels at them; tile-verify runs the check for every target.
"""
from __future__ import annotations

from mlir import ir

from alloy.passes.errors import LoweringError

SYNC_OPS = frozenset({"tile.barrier", "tile.simd_shuffle", "tile.simd_reduce"})
THREAD_OPS = frozenset({"tile.thread_id", "tile.alloc", "tile.barrier", "tile.simd_shuffle", "tile.simd_reduce",
                        "tile.simd_fill", "tile.simd_load", "tile.simd_mma", "tile.simd_store"})
ALWAYS_VARYING = frozenset({"tile.thread_id", "memref.load", "tile.simd_shuffle", "tile.simd_reduce",
                            "tile.simd_fill", "tile.simd_load", "tile.simd_mma", "tile.atomic_rmw",
                            "tile.atomic_cas"})
_SYNC_NAMES = {"tile.barrier": "al.barrier", "tile.simd_shuffle": "a SIMD shuffle", "tile.simd_reduce": "al.simd_reduce"}


def contains_op(op, names) -> bool:
    """Whether `op` or an op nested in it is named in `names`."""
    found = []

    def visit(o):
        if o.name in names:
            found.append(o)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    op.operation.walk(visit)
    return bool(found)


def is_simt_kernel(func) -> bool:
    """Whether a kernel function uses thread-level ops."""
    return contains_op(func, THREAD_OPS)


def contains_sync(op) -> bool:
    return contains_op(op, SYNC_OPS)


class Uniformity:
    """The varying values of one kernel function (`varying(v)`), solved on construction."""

    def __init__(self, func):
        self._varying: set = set()
        changed = True
        while changed:  # loop-carried values settle in a few rounds
            before = len(self._varying)
            self._block(func.regions[0].blocks[0], False)
            changed = len(self._varying) != before

    def varying(self, v: ir.Value) -> bool:
        return v in self._varying

    def _mark(self, values) -> None:
        for v in values:
            self._varying.add(v)

    def _block(self, block, divergent: bool) -> None:
        if divergent:
            self._mark(block.arguments)
        for o in block.operations:
            self._op(o.operation, divergent)

    def _op(self, op, divergent: bool) -> None:
        name = op.name
        results = list(op.results)
        ops = list(op.operands)
        if name == "scf.for":
            lb, ub, step, inits = ops[0], ops[1], ops[2], ops[3:]
            body = op.regions[0].blocks[0]
            div = divergent or any(self.varying(v) for v in (lb, ub, step))
            args = list(body.arguments)
            if div:
                self._mark(args)
            for a, init in zip(args[1:], inits):
                if self.varying(init):
                    self._mark([a])
            self._block(body, div)
            yielded = list(list(body.operations)[-1].operands)
            for a, r, y in zip(args[1:], results, yielded):
                if self.varying(y) or self.varying(a) or div:
                    self._mark([a, r])
            return
        if name == "scf.if":
            div = divergent or self.varying(ops[0])
            for region in op.regions:
                for b in region.blocks:
                    self._block(b, div)
                    term = list(b.operations)[-1]
                    for r, y in zip(results, term.operands):
                        if self.varying(y) or div:
                            self._mark([r])
            return
        if name == "scf.while":
            before, after = op.regions[0].blocks[0], op.regions[1].blocks[0]
            for a, init in zip(before.arguments, ops):
                if self.varying(init) or divergent:
                    self._mark([a])
            self._block(before, divergent)
            cond = list(before.operations)[-1]
            c_ops = list(cond.operands)
            div = divergent or self.varying(c_ops[0])
            for a, r, f in zip(after.arguments, results, c_ops[1:]):
                if self.varying(f) or div:
                    self._mark([a, r])
            self._block(after, div)
            for a, y in zip(before.arguments, list(list(after.operations)[-1].operands)):
                if self.varying(y) or div:
                    self._mark([a])
            return
        if op.regions:
            for region in op.regions:
                for b in region.blocks:
                    self._block(b, divergent)
        if name in ALWAYS_VARYING or divergent or any(self.varying(v) for v in ops):
            self._mark(results)


def check_sync_placement(func, uni: Uniformity | None = None) -> None:
    """Raise LoweringError at the first sync op under thread-dependent control flow."""
    uni = uni or Uniformity(func)

    def walk(block, why):
        for o in block.operations:
            op = o.operation
            if op.name in SYNC_OPS and why is not None:
                raise LoweringError(f"{_SYNC_NAMES[op.name]} under control flow that depends on the thread "
                                    f"({why}); every thread of the threadgroup must reach it", op)
            if not op.regions:
                continue
            inner = why
            ops = list(op.operands)
            if inner is None and op.name == "scf.for" and any(uni.varying(v) for v in ops[:3]):
                inner = "a loop whose bounds differ between threads"
            if inner is None and op.name == "scf.if" and uni.varying(ops[0]):
                inner = "an 'if' whose condition differs between threads"
            if inner is None and op.name == "scf.while":
                cond = list(op.regions[0].blocks[0].operations)[-1]
                if uni.varying(list(cond.operands)[0]):
                    inner = "a 'while' whose condition differs between threads"
            for region in op.regions:
                for b in region.blocks:
                    walk(b, inner)

    walk(func.regions[0].blocks[0], None)
