"""threads-to-loops: a SIMT kernel's threadgroup as loops over its threads, for the CPU target.

One program instance runs its `tile.threads` threads one after another:
the kernel body is cut at its sync ops (barrier, SIMD shuffle, SIMD
reduce) and at uniform loads, and each stretch of thread-level ops becomes
`scf.for %t = 0 to threads`, with `tile.thread_id` reading `%t`. Uniform
arithmetic stays outside the loops, executed once; loops and ifs that contain
a sync op stay outside too (tile-verify proved their control uniform) and are
cut inside. A value made by one thread loop and used by another lives in a
per-thread stack buffer (`tile.stack_alloc`, threads elements); so do the
per-thread values a sync-containing loop or if carries.

A shuffle or reduction is a loop of its own that reads the spilled value of
the other lanes (reductions as a 32-wide tile reduce). Shared arrays become
one stack buffer per program, local arrays one of threads x n elements, and
the SIMD-group matrices exact per-thread 8x8 tiles (every lane holds the
whole matrix: tile.load over offset + r * stride + c, tile.dot with a
float32 accumulator; lane 0 of the group stores it, as the group's lanes
run one after another here). Stack buffers are read and written through
`!tile.ptr`s, so the CPU lowering sees an ordinary scalar-and-tile kernel.
"""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, scf

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.tile_canonicalize import PURE_TILE
from alloy.passes.uniformity import SYNC_OPS, Uniformity, contains_op, contains_sync, is_simt_kernel

THREAD_LOOP = "tile.thread_loop"
_PURE = PURE_TILE | {"tile.alloc", "tile.stack_alloc"}
_EFFECTS = frozenset({"tile.store", "tile.atomic_rmw", "tile.atomic_cas", "memref.store", "tile.simd_store",
                      "tile.load", "memref.load"})
_THREAD, _PURE_KIND, _LOAD, _SYNC = "thread", "pure", "load", "sync"
_MATRIX = tile.SIMD_MATRIX * tile.SIMD_MATRIX


def threads_to_loops(op, target=None) -> None:
    """Pass entry: rewrite each SIMT kernel function of the module (see the module docstring)."""
    module_op = op.operation if hasattr(op, "operation") else op
    with module_op.context:
        for f in tile.kernel_funcs(module_op):
            if "tile.threads" in f.attributes and is_simt_kernel(f):
                _Simulation(f).run()


def _i32() -> ir.Type:
    return ir.IntegerType.get_signless(32)


def _walk_ops(op):
    out = []

    def visit(o):
        out.append(o)
        return ir.WalkResult.ADVANCE

    op.walk(visit)
    return out


class _Simulation:
    def __init__(self, func):
        self.func = func
        self.nt = ir.IntegerAttr(func.attributes["tile.threads"]).value
        self.entry = func.regions[0].blocks[0]
        self.spills: dict = {}  # value -> its per-thread stack buffer
        self.loops: list = []  # (thread loop op, its i32 thread id)
        self.threaded: set = set()  # results of the ops that go into thread loops
        self._consts: dict = {}

    def run(self) -> None:
        self.carry_in_memory(Uniformity(self.func))
        self.structure(self.entry, Uniformity(self.func))
        self.fix_crossings()
        self.lower_thread_ops()

    # ------------------------------------------------------------ helpers
    def const(self, value, type_: ir.Type) -> ir.Value:
        """A constant at the top of the function (made once)."""
        key = (str(type_), value)
        if key not in self._consts:
            with ir.InsertionPoint.at_block_begin(self.entry), self.func.location:
                if isinstance(type_, ir.IntegerType) and type_.width == 1:
                    attr = ir.IntegerAttr.get(type_, int(bool(value)))
                elif isinstance(type_, (ir.IntegerType, ir.IndexType)):
                    attr = ir.IntegerAttr.get(type_, int(value))
                else:
                    attr = ir.FloatAttr.get(type_, float(value))
                self._consts[key] = arith.constant(type_, attr)
        return self._consts[key]

    def stack(self, elem: ir.Type, n: int) -> ir.Value:
        with ir.InsertionPoint.at_block_begin(self.entry), self.func.location:
            return tile.stack_alloc(n, elem)

    @staticmethod
    def _slot_type(t: ir.Type) -> tuple[ir.Type, int]:
        """(memory element type, elements per thread) of a spilled value of type t."""
        if isinstance(t, ir.RankedTensorType):
            return t.element_type, _MATRIX
        if isinstance(t, ir.IndexType) or (isinstance(t, ir.IntegerType) and t.width == 1):
            return ir.IntegerType.get_signless(64 if isinstance(t, ir.IndexType) else 8), 1
        if tile.is_ptr(t):
            raise LoweringError("a per-thread pointer that crosses al.barrier (or a SIMD shuffle or reduce) is not "
                                "supported by the CPU target; carry an integer offset and add it to the array")
        return t, 1

    def _matrix_index(self, base: ir.Value, stride: ir.Value | int) -> ir.Value:
        """tensor<8x8xi32>: base + r * stride + c."""
        shape = [tile.SIMD_MATRIX, tile.SIMD_MATRIX]
        ar = tile.arange(0, tile.SIMD_MATRIX)
        rows = tile.broadcast(tile.expand_dims(ar, 1), shape)
        cols = tile.broadcast(tile.expand_dims(ar, 0), shape)
        st = stride if isinstance(stride, ir.Value) else arith.constant(_i32(), stride)
        idx = arith.addi(arith.muli(rows, tile.splat(st, shape)), cols)
        return arith.addi(idx, tile.splat(base, shape))

    def _matrix_ptrs(self, ptr: ir.Value, base: ir.Value, stride) -> ir.Value:
        shape = [tile.SIMD_MATRIX, tile.SIMD_MATRIX]
        return tile.addptr(tile.splat(ptr, shape), self._matrix_index(base, stride))

    def load_slot(self, buf: ir.Value, t: ir.Type, slot: ir.Value) -> ir.Value:
        """The spilled value of type t at thread `slot` (i32) of buffer buf, at the current insertion point."""
        if isinstance(t, ir.RankedTensorType):
            base = arith.muli(slot, arith.constant(_i32(), _MATRIX))
            return tile.load(self._matrix_ptrs(buf, base, tile.SIMD_MATRIX))
        x = tile.load(tile.addptr(buf, slot))
        if isinstance(t, ir.IndexType):
            return arith.index_cast(t, x)
        if isinstance(t, ir.IntegerType) and t.width == 1:
            return arith.trunci(t, x)
        return x

    def store_slot(self, buf: ir.Value, t: ir.Type, slot: ir.Value, value: ir.Value) -> None:
        if isinstance(t, ir.RankedTensorType):
            base = arith.muli(slot, arith.constant(_i32(), _MATRIX))
            tile.store(self._matrix_ptrs(buf, base, tile.SIMD_MATRIX), value)
            return
        if isinstance(t, ir.IndexType):
            value = arith.index_cast(ir.IntegerType.get_signless(64), value)
        elif isinstance(t, ir.IntegerType) and t.width == 1:
            value = arith.extui(ir.IntegerType.get_signless(8), value)
        tile.store(tile.addptr(buf, slot), value)

    def buffer_for(self, t: ir.Type) -> ir.Value:
        elem, per = self._slot_type(t)
        return self.stack(elem, self.nt * per)

    def dummy(self, t: ir.Type) -> ir.Value:
        """A uniform value of type t (what a carried slot holds once its value lives in memory)."""
        if isinstance(t, ir.RankedTensorType):
            with ir.InsertionPoint.at_block_begin(self.entry), self.func.location:
                zero = arith.constant(t.element_type, ir.FloatAttr.get(t.element_type, 0.0))
                return tile.splat(zero, list(t.shape))
        return self.const(0, t)

    # ---------------------------------------------- 1. carried per-thread values
    def carry_in_memory(self, uni: Uniformity) -> None:
        for o in _walk_ops(self.func.operation):
            if o.name in ("scf.for", "scf.if", "scf.while") and contains_sync(o):
                getattr(self, "_carry_" + o.name[4:])(o, uni)

    def _carry_for(self, op, uni) -> None:
        body = op.regions[0].blocks[0]
        args = list(body.arguments)[1:]
        for i, (a, r) in enumerate(zip(args, op.results)):
            if not (uni.varying(a) or uni.varying(r)):
                continue
            init = op.operands[3 + i]
            slot = _CarriedSlot(self, a.type, init)
            with ir.InsertionPoint(op), op.location:
                slot.store(init)
            op.operands[3 + i] = slot.dummy()
            with ir.InsertionPoint.at_block_begin(body), op.location:
                loaded = slot.load()
            a.replace_all_uses_with(loaded)
            term = list(body.operations)[-1].operation
            with ir.InsertionPoint(term), op.location:
                slot.store(term.operands[i])
            term.operands[i] = a
            with ir.InsertionPoint.after(op), op.location:
                after = slot.load()
            r.replace_all_uses_with(after)

    def _carry_if(self, op, uni) -> None:
        for i, r in enumerate(op.results):
            if not uni.varying(r):
                continue
            terms = [list(region.blocks[0].operations)[-1].operation for region in op.regions]
            slot = _CarriedSlot(self, r.type, terms[0].operands[i])
            for term in terms:
                with ir.InsertionPoint(term), op.location:
                    slot.store(term.operands[i])
                term.operands[i] = slot.dummy()
            with ir.InsertionPoint.after(op), op.location:
                after = slot.load()
            r.replace_all_uses_with(after)

    def _carry_while(self, op, uni) -> None:
        """Per-thread values a sync-containing while loop carries live in per-thread buffers: the values
        entering the `before` region (initial and yielded ones), and those its condition forwards to the
        `after` region and the results."""
        before, after = (region.blocks[0] for region in op.regions)
        cond = list(before.operations)[-1].operation
        yield_ = list(after.operations)[-1].operation
        for i, a in enumerate(list(before.arguments)):
            init, again = op.operands[i], yield_.operands[i]
            if not any(uni.varying(v) for v in (a, init, again)):
                continue
            slot = _CarriedSlot(self, a.type, init)
            with ir.InsertionPoint(op), op.location:
                slot.store(init)
            op.operands[i] = slot.dummy()
            with ir.InsertionPoint.at_block_begin(before), op.location:
                loaded = slot.load()
            a.replace_all_uses_with(loaded)
            with ir.InsertionPoint(yield_), op.location:
                slot.store(yield_.operands[i])
            yield_.operands[i] = slot.dummy()
        for j, (b, r) in enumerate(zip(list(after.arguments), op.results)):
            forwarded = cond.operands[1 + j]
            if not any(uni.varying(v) for v in (b, r, forwarded)):
                continue
            slot = _CarriedSlot(self, b.type, forwarded)
            with ir.InsertionPoint(cond), op.location:
                slot.store(forwarded)
            cond.operands[1 + j] = slot.dummy()
            with ir.InsertionPoint.at_block_begin(after), op.location:
                loaded = slot.load()
            b.replace_all_uses_with(loaded)
            with ir.InsertionPoint.after(op), op.location:
                out = slot.load()
            r.replace_all_uses_with(out)

    # -------------------------------------------------- 2. cut into thread loops
    def kind(self, op, uni: Uniformity) -> str:
        name = op.name
        if name in SYNC_OPS or (op.regions and contains_sync(op)):
            return _SYNC
        if name in ("tile.alloc", "tile.stack_alloc"):
            return _PURE_KIND
        if any(uni.varying(v) or v in self.threaded for v in list(op.operands) + list(op.results)):
            return _THREAD
        if op.regions:
            return _THREAD if contains_op(op, _EFFECTS) else _PURE_KIND
        if name == "tile.load":
            return _LOAD
        if name in _EFFECTS:
            return _THREAD
        if name in _PURE or name.startswith("arith.") or name.startswith("math."):
            return _PURE_KIND
        return _THREAD

    def structure(self, block, uni: Uniformity) -> None:
        ops = [o.operation for o in block.operations]
        pending: list = []
        for op in ops[:-1]:
            k = self.kind(op, uni)
            if k == _THREAD:
                pending.append(op)
                self.threaded.update(op.results)
                continue
            if k == _PURE_KIND:
                continue
            self.flush(pending, op)
            pending = []
            if k == _LOAD:
                continue
            if op.name == "tile.barrier":
                op.erase()
            elif op.name == "tile.simd_shuffle":
                self.shuffle(op, uni)
            elif op.name == "tile.simd_reduce":
                self.reduce(op, uni)
            else:
                for region in op.regions:
                    for b in region.blocks:
                        self.structure(b, uni)
        self.flush(pending, ops[-1])

    def new_loop(self, before, location):
        """An empty thread loop before op `before`: (loop, its i32 thread id, its yield)."""
        idx = ir.IndexType.get()
        lo, hi, one = self.const(0, idx), self.const(self.nt, idx), self.const(1, idx)
        with ir.InsertionPoint(before), location:
            loop = scf.ForOp(lo, hi, one)
            loop.operation.attributes[THREAD_LOOP] = ir.UnitAttr.get()
            with ir.InsertionPoint(loop.body):
                tid = arith.index_cast(_i32(), loop.induction_variable)
                y = scf.YieldOp([])
        self.loops.append((loop.operation, tid))
        return loop.operation, tid, y.operation

    def flush(self, pending: list, before) -> None:
        if not pending:
            return
        _, _, y = self.new_loop(before, pending[0].location)
        for op in pending:
            op.move_before(y)

    def spill(self, v: ir.Value) -> ir.Value:
        """The per-thread buffer holding v, stored right after v is made (inside its thread loop)."""
        if v not in self.spills:
            buf = self.buffer_for(v.type)
            owner = v.owner.operation if hasattr(v.owner, "operation") else v.owner
            tid = self.tid_of(owner)
            with ir.InsertionPoint.after(owner), owner.location:
                self.store_slot(buf, v.type, tid, v)
            self.spills[v] = buf
        return self.spills[v]

    def tid_of(self, op) -> ir.Value:
        loop = self.loop_of(op)
        if loop is None:
            raise LoweringError("internal error: a per-thread value outside the thread loops", op)
        return next(t for lp, t in self.loops if lp == loop)

    def loop_of(self, op):
        """The thread loop enclosing op (None at the outer level)."""
        p = op.parent
        while p is not None and p.name != "func.func":
            if THREAD_LOOP in p.attributes:
                return p
            p = p.parent
        return None

    def shuffle(self, op, uni) -> None:
        v, lane = op.operands[0], op.operands[1]
        r = op.results[0]
        if not uni.varying(v):
            r.replace_all_uses_with(v)
            op.erase()
            return
        buf = self.spill(v)
        mode = ir.StringAttr(op.attributes["mode"]).value
        _, tid, y = self.new_loop(op, op.location)
        with ir.InsertionPoint(y), op.location:
            if mode == "xor":
                src = arith.xori(tid, lane)
            else:
                group = arith.andi(tid, arith.constant(_i32(), ~(tile.SIMD_SIZE - 1)))
                src = arith.ori(group, lane)
            out = self.load_slot(buf, v.type, src)
        r.replace_all_uses_with(out)
        op.erase()

    def reduce(self, op, uni) -> None:
        v = op.operands[0]
        r = op.results[0]
        kind = ir.StringAttr(op.attributes["kind"]).value
        if not uni.varying(v):
            with ir.InsertionPoint(op), op.location:
                if kind != "sum":
                    out = v
                elif isinstance(v.type, ir.IntegerType):
                    out = arith.muli(v, arith.constant(v.type, tile.SIMD_SIZE))
                else:
                    out = arith.mulf(v, arith.constant(v.type, float(tile.SIMD_SIZE)))
            r.replace_all_uses_with(out)
            op.erase()
            return
        buf = self.spill(v)
        _, tid, y = self.new_loop(op, op.location)
        with ir.InsertionPoint(y), op.location:
            group = arith.andi(tid, arith.constant(_i32(), ~(tile.SIMD_SIZE - 1)))
            lanes = arith.addi(tile.splat(group, [tile.SIMD_SIZE]), tile.arange(0, tile.SIMD_SIZE))
            vals = tile.load(tile.addptr(tile.splat(buf, [tile.SIMD_SIZE]), lanes))
            out = tile.reduce(vals, 0, kind)
        r.replace_all_uses_with(out)
        op.erase()

    # ---------------------------------------- 3. values crossing thread loops
    def fix_crossings(self) -> None:
        """Until none is left: a value used in another thread loop than its own is spilled and reloaded there
        (a pointer is recomputed there instead, from its reloaded offset)."""
        while any(self._reload_elsewhere(loop, r) for loop, _ in list(self.loops)
                  for o in _walk_ops(loop) if o != loop for r in o.results):
            pass

    def _reload_elsewhere(self, loop, r: ir.Value) -> bool:
        by_loop: dict = {}
        for u in list(r.uses):
            owner = u.owner.operation if hasattr(u.owner, "operation") else u.owner
            other = owner if THREAD_LOOP in owner.attributes else self.loop_of(owner)
            if other is None:
                raise LoweringError("internal error: a per-thread value used outside the thread loops", owner)
            if other == loop:
                continue
            by_loop.setdefault(other, []).append((owner, u.operand_number))
        if not by_loop:
            return False
        owner = r.owner.operation if hasattr(r.owner, "operation") else r.owner
        recompute = tile.is_ptr(r.type) and owner.name == "tile.addptr"
        buf = None if recompute else self.spill(r)
        for other, uses in by_loop.items():
            tid = next(t for lp, t in self.loops if lp == other)
            tid_op = tid.owner.operation if hasattr(tid.owner, "operation") else tid.owner
            with ir.InsertionPoint.after(tid_op), other.location:
                if recompute:
                    v = tile.addptr(owner.operands[0], owner.operands[1])
                else:
                    v = self.load_slot(buf, r.type, tid)
            for user, n in uses:
                user.operands[n] = v
        return True

    # ------------------------------------------- 4. thread ops as plain tile ops
    def lower_thread_ops(self) -> None:
        def named(names):  # collected before any is erased: an erased op's Python object must not be touched
            return [o for o in _walk_ops(self.func.operation) if o.name in names]

        for o in named(("tile.thread_id",)):
            o.results[0].replace_all_uses_with(self.tid_of(o))
            o.erase()
        for o in named(("tile.alloc",)):
            self._array(o)
        for o in named(tuple(_MATRIX_LOWERING)):
            with ir.InsertionPoint(o), o.location:
                _MATRIX_LOWERING[o.name](self, o)
            o.erase()

    def _array(self, op) -> None:
        space = ir.StringAttr(op.attributes["space"]).value
        t = op.results[0].type
        n = t.shape[0]
        buf = self.stack(t.element_type, n * (self.nt if space == "local" else 1))
        for u in list(op.results[0].uses):
            user = u.owner.operation if hasattr(u.owner, "operation") else u.owner
            with ir.InsertionPoint(user), user.location:
                if user.name in ("memref.load", "memref.store"):
                    idx = user.operands[1 if user.name == "memref.load" else 2]
                    i = arith.index_cast(_i32(), idx)
                    if space == "local":
                        i = arith.addi(arith.muli(self.tid_of(user), arith.constant(_i32(), n)), i)
                    p = tile.addptr(buf, i)
                    if user.name == "memref.load":
                        user.results[0].replace_all_uses_with(tile.load(p))
                    else:
                        tile.store(p, user.operands[0])
                    user.erase()
                else:  # simd_load / simd_store of a shared array: the matrix lowering reads pointers
                    user.operands[u.operand_number] = buf
        op.erase()


class _CarriedSlot:
    """A per-thread buffer for one value a sync-containing loop carries or if yields. A pointer is kept as its
    integer offset from the function argument it derives from (through tile.addptr steps), and rebuilt from it."""

    def __init__(self, sim: _Simulation, t: ir.Type, sample: ir.Value) -> None:
        self.sim, self.t = sim, t
        self.base = None
        if tile.is_ptr(t):
            self.base, _ = _addptr_chain(sample)
            if self.base is None or not any(self.base == a for a in sim.entry.arguments):
                raise LoweringError("a per-thread pointer kept by a loop or if that contains al.barrier (or a SIMD "
                                    "shuffle or reduce) must be an array argument plus offsets on the CPU target",
                                    _owner(sample) or sim.func)
            self.t = ir.IntegerType.get_signless(64)
        self.buf = sim.buffer_for(self.t)

    def store(self, value: ir.Value) -> None:
        """Store `value` (this thread's) at the insertion point."""
        if self.base is not None:
            base, steps = _addptr_chain(value)
            if base != self.base:
                raise LoweringError("a per-thread pointer kept by a loop or if that contains al.barrier moves to "
                                    "another array; the CPU target needs one array plus offsets",
                                    _owner(value) or self.sim.func)
            value = self.sim.const(0, self.t)
            for step in steps:
                if ir.IntegerType(step.type).width < 64:
                    step = arith.extsi(self.t, step)
                value = arith.addi(value, step)
        self.sim.store_slot(self.buf, self.t, tile.thread_id(), value)

    def load(self) -> ir.Value:
        """This thread's value, at the insertion point."""
        value = self.sim.load_slot(self.buf, self.t, tile.thread_id())
        return value if self.base is None else tile.addptr(self.base, value)

    def dummy(self) -> ir.Value:
        """A uniform stand-in for the carried operand (its value lives in the buffer)."""
        return self.base if self.base is not None else self.sim.dummy(self.t)


def _owner(v: ir.Value):
    if isinstance(v, ir.BlockArgument):
        return None
    return v.owner.operation if hasattr(v.owner, "operation") else v.owner


def _addptr_chain(v: ir.Value) -> tuple:
    """(the value a scalar pointer derives from through tile.addptr steps, the steps' offsets)."""
    steps = []
    while (op := _owner(v)) is not None and op.name == "tile.addptr" and tile.shape_of(v.type) is None:
        steps.append(op.operands[1])
        v = op.operands[0]
    return v, steps


def _lower_fill(sim: _Simulation, op) -> None:
    op.results[0].replace_all_uses_with(tile.splat(op.operands[0], [tile.SIMD_MATRIX, tile.SIMD_MATRIX]))


def _lower_load(sim: _Simulation, op) -> None:
    src, off, stride = op.operands
    op.results[0].replace_all_uses_with(tile.load(sim._matrix_ptrs(src, off, stride)))


def _lower_store(sim: _Simulation, op) -> None:
    """Lane 0 of each SIMD group stores (its lanes run one after another here, and a later lane's loads must
    not see the group's own store)."""
    m, dst, off, stride = op.operands
    lane = arith.andi(sim.tid_of(op), arith.constant(_i32(), tile.SIMD_SIZE - 1))
    first = arith.cmpi(arith.CmpIPredicate.eq, lane, arith.constant(_i32(), 0))
    branch = scf.IfOp(first)
    with ir.InsertionPoint(branch.then_block):
        tile.store(sim._matrix_ptrs(dst, off, stride), m)
        scf.YieldOp([])


def _lower_mma(sim: _Simulation, op) -> None:
    acc, a, b = op.operands
    t = acc.type
    f32 = ir.F32Type.get()
    if t.element_type == f32:
        out = tile.dot(a, b, acc)
    else:
        wide = ir.RankedTensorType.get(list(t.shape), f32)
        out = arith.truncf(t, tile.dot(a, b, arith.extf(wide, acc)))
    op.results[0].replace_all_uses_with(out)


_MATRIX_LOWERING = {"tile.simd_fill": _lower_fill, "tile.simd_load": _lower_load, "tile.simd_store": _lower_store,
                    "tile.simd_mma": _lower_mma}
