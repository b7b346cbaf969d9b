"""Hopper (sm_90a) tile_dot loops: warpgroup MMA fed by a cp.async shared-memory pipeline.

A K loop of the form

    for k in range(lb, ub, step):          # iter_args: acc, a_ptrs, b_ptrs, ...
        a = tile.load(a_ptrs, mask)        # [BM, BK] f16/bf16, contiguous along K
        b = tile.load(b_ptrs, mask)        # [BN, BK], contiguous along K
        acc = tile.dot(a, tile.trans(b), acc)   # f32 accumulator [BM, BN]
        a_ptrs += ...; b_ptrs += ...

runs as a software pipeline over up to `MAX_STAGES` shared-memory buffers
(dynamic shared memory, 1024-byte aligned; as many as fit `STAGE_BUDGET`).
Each thread copies its 16-byte runs of the a and b tiles with `cp.async`
(zero-filled when masked off) into the swizzled K-major layout that `wgmma`
reads through matrix descriptors (rows of 64 K-elements: the 128-byte swizzle;
rows of 32: the 64-byte one). Iteration i waits for its stage, synchronises
the block, issues its MMAs, then the copies for iteration i + stages - 2, and
leaves one wgmma group in flight: a stage is refilled only after every
warpgroup finished the MMAs reading it, and global-memory latency hides behind
stages - 2 iterations of tensor-core work. The loads' address arithmetic (the
"slice": the ops the loads depend on, and the updates of the loop-carried
pointers) is evaluated ahead, once per prologue stage and once per iteration
for the iteration it loads; only the first pointer of each 16-byte run is
carried. A thread whose runs are all unmasked and aligned issues plain copies;
otherwise it copies run by run (masked runs zero-filled, split runs element by
element).

The accumulator lives in wgmma's register fragments (`W`): one
`!llvm.struct<(f32 x BN/2)>` per 64-row block of the warpgroup; it leaves that
layout through shared memory (`to_dist`) where the tile is used after the
loop.

Requirements (else the WMMA path of dot.py runs): a target with warpgroup MMA (CUDA sm_90a),
128 or 256 threads (one or two warpgroups; simt-layout picks two for dots of
32768+ elements, warpgroup g owning the 64-row blocks g, g + 2, ...), f16 or
bf16 operands, f32 accumulator, BM a multiple of 64 per warpgroup, BN a
multiple of 16 up to 256, at most 128 accumulator registers per thread, BK a
multiple of 32, 16-byte runs (vec 8), loads without a nonzero `other`, and
loads used only by the dot.
"""
from __future__ import annotations

from dataclasses import dataclass

from mlir import ir

from alloy.dialects import tile
from alloy.passes.simt.hopper_wgmma_match import Plan, owner, zero_or_none
from alloy.passes.simt.lowering import SimtLowering
from alloy.passes.simt.memory import aligned, all_of, if_op
from alloy.passes.simt.scf import bind, flat_types, flatten
from alloy.passes.simt.values import DYNAMIC_SHARED, GLOBAL_PTR, Distributed, Uniform, mem_elem

MAX_STAGES = 8
MMA_IN_FLIGHT = 1  # wgmma groups left running at the end of an iteration (overlapping the next copies)
STAGE_BUDGET = 200 * 1024  # bytes of stage buffers at most (sm_90 allows 227 KiB of shared memory per block)
_SWIZZLE_MODE = {128: 1, 64: 2}  # bytes per swizzled row -> the descriptor's layout type
EPI_PAD = 8  # f32 of padding per row of the epilogue's exchange buffer


@dataclass
class WarpgroupAccumulator:
    """A [BM, BN] f32 tile in wgmma accumulator fragments: one struct per 64-row block."""

    structs: list
    shape: tuple

    @property
    def struct_type(self) -> str:
        return _struct(self.shape[1])


def _struct(n: int) -> str:
    return "!llvm.struct<(" + ", ".join(["f32"] * (n // 2)) + ")>"


# ------------------------------------------------------------------ emission
class _Emit:
    """Shared-memory addressing and the copy/multiply steps of one planned loop."""

    def __init__(self, lw: SimtLowering, plan: Plan) -> None:
        self.lw, self.p = lw, plan
        self.row = 128 if plan.bk % 64 == 0 else 64  # bytes per swizzled row (K-chunks of row // 2 elements)
        # descriptor constant: LBO 16 B (unused when K-major and swizzled), SBO = 8 rows, the swizzle mode
        self.desc_bits = (1 << 16) | ((8 * self.row // 16) << 32) | (_SWIZZLE_MODE[self.row] << 62)
        self.a_bytes = plan.bm * plan.bk * 2
        self.stage_bytes = (plan.bm + plan.bn) * plan.bk * 2
        self.stages = max(2, min(MAX_STAGES, STAGE_BUDGET // self.stage_bytes))
        # iterations loaded ahead; a stage is refilled only after every wgmma reading it completed
        self.prefetch = self.stages - 1 - MMA_IN_FLIGHT
        lw.dynamic_shared = max(lw.dynamic_shared, 1024 + max(self.stages * self.stage_bytes,
                                                              plan.bm * (plan.bn + EPI_PAD) * 4))
        self.base = dsmem_base(lw)
        self.offs = [self._run_offsets(plan.bm, 0), self._run_offsets(plan.bn, self.a_bytes)]

    def _run_offsets(self, rows: int, start: int) -> list[str]:
        """Byte offset in a stage of each 16-byte run this thread copies ([rows, BK] tile, K-major)."""
        lw, bk, row, width = self.lw, self.p.bk, self.row, self.row // 2
        lay = lw.layout((rows, bk))
        out = []
        for k0 in range(0, lay.regs, 8):
            e = lw.flat(lay, k0)
            r = lw.pro_op(f"arith.divui {e}, {lw.i32(bk)} : i32")
            c = lw.pro_op(f"arith.remui {e}, {lw.i32(bk)} : i32")
            sub = lw.pro_op(f"arith.divui {c}, {lw.i32(width)} : i32")
            chunk = lw.pro_op(f"arith.divui {lw.pro_op(f'arith.remui {c}, {lw.i32(width)} : i32')}, {lw.i32(8)} : i32")
            # the hardware's swizzle: 16-byte chunk bits [4, 7) of the address XOR address bits [7, 10)
            phase = lw.pro_op(f"arith.remui {r}, {lw.i32(8)} : i32")
            if row == 64:
                phase = lw.pro_op(f"arith.shrui {phase}, {lw.i32(1)} : i32")
            sw = lw.pro_op(f"arith.xori {chunk}, {phase} : i32")
            off = lw.pro_op(f"arith.muli {sub}, {lw.i32(rows * row)} : i32")
            off = lw.pro_op(f"arith.addi {off}, {lw.pro_op(f'arith.muli {r}, {lw.i32(row)} : i32')} : i32")
            off = lw.pro_op(f"arith.addi {off}, {lw.pro_op(f'arith.muli {sw}, {lw.i32(16)} : i32')} : i32")
            out.append(off if start == 0 else lw.pro_op(f"arith.addi {off}, {lw.i32(start)} : i32"))
        return out

    def stage_base(self, index: str) -> str:
        lw = self.lw
        s = lw.op(f"arith.remui {index}, {lw.i32(self.stages)} : i32")
        return lw.op(f"arith.addi {self.base}, {lw.op(f'arith.muli {s}, {lw.i32(self.stage_bytes)} : i32')} : i32")

    def copy(self, sbase: str, in_range: str) -> None:
        """Issue this thread's copies of both operand tiles (already evaluated in lw.env) into a stage:
        when the iteration exists, every run of the thread is unmasked and 16-byte aligned, plain
        cp.async; otherwise run by run (masked runs zero-filled, split runs element by element)."""
        lw = self.lw
        runs = []  # (first pointer, destination)
        conds = []
        for ld, offs in zip(self.p.loads, self.offs):
            ptr_v, mask_v, _ = tile.load_operands(ld)
            ptrs = lw.val(ptr_v).regs
            if mask_v is not None:
                conds.append(all_valid(lw, mask_v, list(range(len(ptrs)))))
            runs += [(ptrs[8 * j], lw.op(f"arith.addi {sbase}, {off} : i32")) for j, off in enumerate(offs)]
        low = None
        for src, _ in runs:
            i = lw.op(f"llvm.ptrtoint {src} : {GLOBAL_PTR} to i64")
            low = i if low is None else lw.op(f"arith.ori {low}, {i} : i64")
        low = lw.op(f"arith.andi {low}, {lw.const(15, 'i64')} : i64")
        ok = all_of(lw, [lw.op(f"arith.cmpi eq, {low}, {lw.const(0, 'i64')} : i64")] + conds)

        def fast():
            for src, dst in runs:
                _cp_async(lw, dst, src, lw.i32(16))
            return []

        def general():
            lw.convert_ops(self.p.mask_ops)
            k = 0
            for ld in self.p.loads:
                ptr_v, mask_v, _ = tile.load_operands(ld)
                shape = tuple(ptr_v.type.shape)
                masks = lw.regs_of(lw.val(mask_v), shape) if mask_v is not None else None
                for j in range(len(lw.val(ptr_v).regs) // 8):
                    src, dst = runs[k]
                    self._copy_run(src, None if masks is None else masks[8 * j:8 * j + 8], dst)
                    k += 1
            return []

        if_op(lw, in_range, [], lambda: if_op(lw, ok, [], fast, general) and [], None)
        lw.emit("nvvm.cp.async.commit.group")

    def _copy_run(self, src: str, masks, dst: str) -> None:
        lw = self.lw
        if masks is None:
            _cp_async(lw, dst, src, lw.i32(16))
            return
        every, some = masks[0], masks[0]
        for m in masks[1:]:
            every = lw.op(f"arith.andi {every}, {m} : i1")
            some = lw.op(f"arith.ori {some}, {m} : i1")
        one = lw.const("true", "i1")
        uniform = lw.op(f"arith.xori {every}, {lw.op(f'arith.xori {some}, {one} : i1')} : i1")
        fast = lw.op(f"arith.andi {uniform}, {aligned(lw, src, 16)} : i1")

        def vector():
            _cp_async(lw, dst, src, lw.op(f"arith.select {every}, {lw.i32(16)}, {lw.i32(0)} : i32"))
            return []

        def scalar():
            for j, m in enumerate(masks):
                p = src if j == 0 else lw.op(f"llvm.getelementptr {src}[{j}] : ({GLOBAL_PTR}) -> {GLOBAL_PTR}, i16")
                v = if_op(lw, m, ["i16"], lambda p=p: [lw.op(f"llvm.load {p} : {GLOBAL_PTR} -> i16")],
                        lambda: [lw.const(0, "i16")])[0]
                a = lw.op(f"arith.addi {dst}, {lw.i32(2 * j)} : i32")
                lw.emit(f"llvm.store {v}, {lw.op(f'llvm.inttoptr {a} : i32 to !llvm.ptr<3>')} : i16, !llvm.ptr<3>")
            return []

        if_op(lw, fast, [], vector, scalar)

    def mma(self, sbase: str, acc: WarpgroupAccumulator) -> WarpgroupAccumulator:
        lw, p = self.lw, self.p
        st = acc.struct_type
        ab = "bf16" if p.elem == "bf16" else "f16"
        lw.emit("nvvm.wgmma.fence.aligned")
        structs = list(acc.structs)
        for kk in range(p.bk // 16):
            sub, within = divmod(kk * 16, self.row // 2)
            b_off = self.a_bytes + sub * p.bn * self.row + within * 2
            db = _desc(lw, lw.op(f"arith.addi {sbase}, {lw.i32(b_off)} : i32"), self.desc_bits)
            for j in range(len(structs)):
                off = sub * p.bm * self.row + j * (lw.nt // 128) * 64 * self.row + within * 2
                a = lw.op(f"arith.addi {lw.op(f'arith.addi {sbase}, {_wg_rows(lw, self.row)} : i32')}, "
                          f"{lw.i32(off)} : i32")
                da = _desc(lw, a, self.desc_bits)
                structs[j] = lw.op(
                    f"nvvm.wgmma.mma_async {da}, {db}, {structs[j]}, #nvvm.shape<m = 64, n = {p.bn}, k = 16>, "
                    f"D [<f32>, #nvvm.wgmma_scale_out<one>], A [<{ab}>, #nvvm.wgmma_scale_in<one>, <row>], "
                    f"B [<{ab}>, #nvvm.wgmma_scale_in<one>, <col>] : {st} -> {st}")
        lw.emit("nvvm.wgmma.commit.group.sync.aligned")
        return WarpgroupAccumulator(structs, acc.shape)


def all_valid(lw: SimtLowering, v: ir.Value, ks: list[int]) -> str:
    """i1: registers `ks` of the mask tile v are all true in this thread. Masks built as
    `rows[:, None] & cols[None, :]` are evaluated once per distinct row and column (the blocked
    layout repeats the same columns in every run when nt * vec is a multiple of the width),
    by recomputing the index arithmetic; other masks register by register."""
    o = owner(v)
    shape = tuple(v.type.shape)
    lay = lw.layout(shape)
    if o is not None and o.operation.name == "arith.andi":
        return all_of(lw, [all_valid(lw, x, ks) for x in o.operands])
    if o is not None and o.operation.name == "tile.broadcast" and len(shape) == 2 and \
            (lay.vec * lay.threads) % shape[1] == 0 and shape[1] % lay.vec == 0 and not lay.replicated:
        src = o.operands[0]
        src_shape = tuple(src.type.shape)
        if lw.can_remat(src) and src_shape in ((shape[0], 1), (1, shape[1])):
            reps = sorted({(k // lay.vec) * lay.vec if src_shape[1] == 1 else k % lay.vec for k in ks})
            idxs = [lw.broadcast_index(lw.flat(lay, k), shape, src_shape) for k in reps]
            return all_of(lw, lw.remat(src, idxs))
    regs = lw.regs_of(lw.val(v), shape)
    return all_of(lw, [regs[k] for k in ks])


def _cp_async(lw: SimtLowering, dst: str, src: str, size: str) -> None:
    d = lw.op(f"llvm.inttoptr {dst} : i32 to !llvm.ptr<3>")
    lw.emit(f"nvvm.cp.async.shared.global {d}, {src}, 16, cache = cg, {size} : !llvm.ptr<3>, {GLOBAL_PTR}, i32")


def _desc(lw: SimtLowering, addr: str, bits: int) -> str:
    """wgmma matrix descriptor: the shared address >> 4 in bits [0, 14), then the layout `bits`."""
    a = lw.op(f"arith.extui {addr} : i32 to i64")
    a = lw.op(f"arith.shrui {a}, {lw.const(4, 'i64')} : i64")
    a = lw.op(f"arith.andi {a}, {lw.const(0x3FFF, 'i64')} : i64")
    return lw.op(f"arith.ori {a}, {lw.const(bits, 'i64')} : i64")


def dsmem_base(lw: SimtLowering) -> str:
    """i32 shared-window address of the kernel's dynamic shared memory, rounded up to 1024 bytes."""
    key = "dsmem"
    if key not in lw.cache:
        p = lw.pro_op(f"llvm.mlir.addressof {DYNAMIC_SHARED} : !llvm.ptr<3>")
        a = lw.pro_op(f"llvm.ptrtoint {p} : !llvm.ptr<3> to i32")
        a = lw.pro_op(f"arith.addi {a}, {lw.i32(1023)} : i32")
        lw.cache[key] = lw.pro_op(f"arith.andi {a}, {lw.i32(-1024)} : i32")
    return lw.cache[key]


# ------------------------------------------------------------- fragments
def _wg_rows(lw: SimtLowering, scale: int) -> str:
    """i32: this thread's warpgroup's first accumulator row (warpgroup g owns 64-row blocks g, g + nwg, ...),
    times `scale`."""
    key = ("wg_rows", scale)
    if key not in lw.cache:
        g = lw.pro_op(f"arith.divui {lw.tid()}, {lw.i32(128)} : i32")
        lw.cache[key] = lw.pro_op(f"arith.muli {g}, {lw.i32(64 * scale)} : i32")
    return lw.cache[key]


def _frag_coords(lw: SimtLowering, shape) -> list[tuple[str, str]]:
    """(row, col) i32 of each accumulator register of this thread, block by block, in order."""
    t = lw.tid()
    w = lw.op(f"arith.remui {lw.op(f'arith.divui {t}, {lw.i32(32)} : i32')}, {lw.i32(4)} : i32")
    lane = lw.op(f"arith.remui {t}, {lw.i32(32)} : i32")
    row0 = lw.op(f"arith.addi {lw.op(f'arith.muli {w}, {lw.i32(16)} : i32')}, "
                 f"{lw.op(f'arith.divui {lane}, {lw.i32(4)} : i32')} : i32")
    row0 = lw.op(f"arith.addi {row0}, {_wg_rows(lw, 1)} : i32")
    col0 = lw.op(f"arith.muli {lw.op(f'arith.remui {lane}, {lw.i32(4)} : i32')}, {lw.i32(2)} : i32")
    out = []
    nwg = lw.nt // 128
    for mb in range(0, shape[0] // 64, nwg):
        for i in range(shape[1] // 2):
            r = lw.op(f"arith.addi {row0}, {lw.i32(mb * 64 + 8 * ((i >> 1) & 1))} : i32")
            c = lw.op(f"arith.addi {col0}, {lw.i32(8 * (i >> 2) + (i & 1))} : i32")
            out.append((r, c))
    return out


def _epi_addr(lw: SimtLowering, r: str, c: str, n: int) -> str:
    e = lw.op(f"arith.addi {lw.op(f'arith.muli {r}, {lw.i32(n + EPI_PAD)} : i32')}, {c} : i32")
    a = lw.op(f"arith.addi {dsmem_base(lw)}, {lw.op(f'arith.muli {e}, {lw.i32(4)} : i32')} : i32")
    return lw.op(f"llvm.inttoptr {a} : i32 to !llvm.ptr<3>")


def to_blocked(lw: SimtLowering, x: WarpgroupAccumulator) -> Distributed:
    """Accumulator fragments -> blocked layout, through the (then idle) dynamic shared memory:
    each fragment's column pairs as 8-byte stores, each blocked-layout run as 16-byte loads."""
    m, n = x.shape
    lw.dynamic_shared = max(lw.dynamic_shared, 1024 + m * (n + EPI_PAD) * 4)
    lw.barrier()
    coords = _frag_coords(lw, x.shape)
    per = n // 2
    for k in range(0, len(coords), 2):  # registers k, k + 1: columns c, c + 1 of one row
        r, c = coords[k]
        pair = [lw.op(f"llvm.extractvalue {x.structs[j // per]}[{j % per}] : {x.struct_type}") for j in (k, k + 1)]
        v = lw.op(f"vector.from_elements {pair[0]}, {pair[1]} : vector<2xf32>")
        lw.emit(f"llvm.store {v}, {_epi_addr(lw, r, c, n)} {{alignment = 8 : i64}} : vector<2xf32>, !llvm.ptr<3>")
    lw.barrier()
    lay = lw.layout((m, n))
    run = 4 if lay.vec % 4 == 0 and n % 4 == 0 else 1
    regs = []
    for k0 in range(0, lay.regs, run):
        r, c = lw.unravel(lw.flat(lay, k0), (m, n))
        if run == 1:
            regs.append(lw.op(f"llvm.load {_epi_addr(lw, r, c, n)} : !llvm.ptr<3> -> f32"))
            continue
        v = lw.op(f"llvm.load {_epi_addr(lw, r, c, n)} {{alignment = 16 : i64}} : !llvm.ptr<3> -> vector<4xf32>")
        regs += [lw.op(f"vector.extract {v}[{i}] : f32 from vector<4xf32>") for i in range(4)]
    lw.barrier()
    return Distributed(regs, "f32", (m, n))


def from_value(lw: SimtLowering, v: ir.Value, shape) -> WarpgroupAccumulator:
    """The loop's initial accumulator in fragments: zeros directly, anything else through shared memory."""
    st = _struct(shape[1])
    o = owner(v)
    if o is not None and o.operation.name == "arith.constant" and zero_or_none(v):
        z = lw.op(f"llvm.mlir.zero : {st}")
        return WarpgroupAccumulator([z] * (shape[0] // 64 // (lw.nt // 128)), shape)
    x = lw.val_any(v)
    if isinstance(x, WarpgroupAccumulator):
        return x
    d = lw.dist(v)
    m, n = shape
    lw.dynamic_shared = max(lw.dynamic_shared, 1024 + m * (n + EPI_PAD) * 4)
    lw.barrier()
    for idx, reg in zip(lw.flats((m, n)), d.regs):
        r, c = lw.unravel(idx, (m, n))
        lw.emit(f"llvm.store {reg}, {_epi_addr(lw, r, c, n)} : f32, !llvm.ptr<3>")
    lw.barrier()
    per = n // 2
    structs = [lw.op(f"llvm.mlir.undef : {st}") for _ in range(m // 64 // (lw.nt // 128))]
    for k, (r, c) in enumerate(_frag_coords(lw, shape)):
        val = lw.op(f"llvm.load {_epi_addr(lw, r, c, n)} : !llvm.ptr<3> -> f32")
        structs[k // per] = lw.op(f"llvm.insertvalue {val}, {structs[k // per]}[{k % per}] : {st}")
    lw.barrier()
    return WarpgroupAccumulator(structs, shape)


# ------------------------------------------------------------------- loop
def lower_loop(lw: SimtLowering, for_op, plan: Plan) -> None:
    block = for_op.regions[0].blocks[0]
    bargs = list(block.arguments)
    term = list(block.operations)[-1]
    inits = list(for_op.operands)[3:]
    lb, ub, step = (lw.val(v) for v in list(for_op.operands)[:3])
    it_t = lb.type
    em = _Emit(lw, plan)
    acc = from_value(lw, inits[plan.acc_index], (plan.bm, plan.bn))
    kept = [i for i in range(len(inits)) if i != plan.acc_index and i not in plan.dropped]
    ahead_args = plan.slice_args

    def bind_ahead(iv: str, values: dict) -> None:
        lw.env[bargs[0]] = Uniform(iv, it_t)
        for i in ahead_args:
            lw.env[bargs[i + 1]] = values[i]

    def advance(values: dict) -> dict:
        lw.convert_ops(plan.update_ops)
        return {i: lw.val(term.operands[i]) for i in ahead_args}

    # prologue: iterations 0 .. prefetch-1 into stages 0 .. prefetch-1
    values = {i: lw.val(inits[i]) for i in ahead_args}
    for s in range(em.prefetch):
        iv = lb.name if s == 0 else lw.op(
            f"arith.addi {lb.name}, {lw.op(f'arith.muli {step.name}, {lw.const(s, it_t)} : {it_t}')} : {it_t}")
        bind_ahead(iv, values)
        lw.convert_ops(plan.slice_ops)
        in_range = lw.op(f"arith.cmpi slt, {iv}, {ub.name} : {it_t}")
        em.copy(lw.op(f"arith.addi {em.base}, {lw.i32(s * em.stage_bytes)} : i32"), in_range)
        values = advance(values)

    # loop-carried: accumulator structs, kept iter_args, the slice's values for iteration i + prefetch, i
    ahead_flat = [r for i in ahead_args for r in _compress(lw, bargs[i + 1], values[i])]
    ahead_types = [t for i in ahead_args for t in _compressed_types(lw, bargs[i + 1])]
    init_flat = list(acc.structs) + [r for i in kept for r in flatten(lw, inits[i])] + ahead_flat + [lw.i32(0)]
    types = [acc.struct_type] * len(acc.structs) + [t for i in kept for t in flat_types(lw, inits[i].type)] \
        + ahead_types + ["i32"]
    prefix, names = lw.results(len(types))
    iv = lw.new("iv")
    a = [lw.new("a") for _ in types]
    lw.emit(f'{prefix}"scf.for"({", ".join([lb.name, ub.name, step.name] + init_flat)}) ({{')
    lw.emit(f'^bb0({", ".join([f"{iv}: {it_t}"] + [f"{x}: {t}" for x, t in zip(a, types)])}):')
    lw.depth += 1
    nacc = len(acc.structs)
    cur_acc = WarpgroupAccumulator(a[:nacc], acc.shape)
    pos = nacc
    cur_kept = []
    for i in kept:
        n = len(flat_types(lw, inits[i].type))
        cur_kept.append(a[pos:pos + n])
        pos += n
    ahead_vals = {}
    for i in ahead_args:
        n = len(_compressed_types(lw, bargs[i + 1]))
        ahead_vals[i] = _expand(lw, bargs[i + 1], a[pos:pos + n])
        pos += n
    count = a[pos]

    lw.emit(f"nvvm.cp.async.wait.group {em.prefetch - 1}")
    lw.emit("nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}")
    lw.barrier()
    new_acc = em.mma(em.stage_base(count), cur_acc)

    ahead = lw.op(f"arith.muli {step.name}, {lw.const(em.prefetch, it_t)} : {it_t}")
    iv_next = lw.op(f"arith.addi {iv}, {ahead} : {it_t}")
    bind_ahead(iv_next, ahead_vals)
    lw.convert_ops(plan.slice_ops)
    in_range = lw.op(f"arith.cmpi slt, {iv_next}, {ub.name} : {it_t}")
    em.copy(em.stage_base(lw.op(f"arith.addi {count}, {lw.i32(em.prefetch)} : i32")), in_range)
    new_ahead = advance(ahead_vals)
    lw.emit(f"nvvm.wgmma.wait.group.sync.aligned {MMA_IN_FLIGHT}")  # after the copies: they overlap the MMAs

    lw.env[bargs[0]] = Uniform(iv, it_t)
    for i, names_i in zip(kept, cur_kept):
        bind(lw, [bargs[i + 1]], names_i)
    lw.convert_ops(plan.need_ops)
    flat = list(new_acc.structs) + [r for i in kept for r in flatten(lw, term.operands[i])] \
        + [r for i in ahead_args for r in _compress(lw, bargs[i + 1], new_ahead[i])] \
        + [lw.op(f"arith.addi {count}, {lw.i32(1)} : i32")]
    lw.emit(f'"scf.yield"({", ".join(flat)}) : ({", ".join(types)}) -> ()')
    lw.depth -= 1
    lw.emit(f'}}) : ({", ".join([it_t] * 3 + types)}) -> ({", ".join(types)})')
    lw.emit("nvvm.wgmma.wait.group.sync.aligned 0")
    lw.emit("nvvm.cp.async.wait.group 0")
    lw.barrier()
    res = list(for_op.results)
    lw.env[res[plan.acc_index]] = WarpgroupAccumulator(names[:nacc], acc.shape)
    pos = nacc
    for i in kept:
        n = len(flat_types(lw, inits[i].type))
        bind(lw, [res[i]], names[pos:pos + n])
        pos += n


def _runs_only(lw: SimtLowering, v: ir.Value) -> bool:
    """Carry only the first pointer of each 16-byte run of this pointer tile (its last stride is 1)."""
    t = v.type
    if not isinstance(t, ir.RankedTensorType) or not tile.is_ptr(t.element_type) or t.shape[-1] % 8:
        return False
    s = lw.axis.strides(v)
    return s is not None and s[-1] == 1


def _compressed_types(lw: SimtLowering, v: ir.Value) -> list[str]:
    types = flat_types(lw, v.type)
    return types[::8] if _runs_only(lw, v) else types


def _compress(lw: SimtLowering, v: ir.Value, x) -> list[str]:
    """The carried registers of iter_arg v's value x (see _runs_only)."""
    if isinstance(x, Uniform):
        return [x.name]
    return x.regs[::8] if _runs_only(lw, v) else list(x.regs)


def _expand(lw: SimtLowering, v: ir.Value, names: list[str]):
    """The iter_arg's value from its carried registers (each run's other pointers recomputed)."""
    t = v.type
    e = lw.ty(t)
    if not isinstance(t, ir.RankedTensorType):
        return Uniform(names[0], e)
    if not _runs_only(lw, v):
        return Distributed(list(names), e, tuple(t.shape))
    me = mem_elem(str(tile.ptr_elem(t.element_type)))
    regs = []
    for first in names:
        regs.append(first)
        regs += [lw.op(f"llvm.getelementptr {first}[{j}] : ({GLOBAL_PTR}) -> {GLOBAL_PTR}, {me}") for j in range(1, 8)]
    return Distributed(regs, e, tuple(t.shape))
