"""Thread-level (SIMT) ops in convert-tile-to-simt: thread ids, threadgroup and per-thread arrays, barriers,
SIMD-group shuffles and reductions, and the 8x8 SIMD-group matrices.

In a SIMT kernel every scalar is per thread already (one SSA value in each
thread's code), so these ops map one to one: `tile.thread_id` is
`gpu.thread_id x`; a shared `tile.alloc` is a workgroup buffer of the
gpu.func, a local one a `memref.alloca` in the prologue; memref.load/store
keep their form; `tile.barrier` is `gpu.barrier`; shuffles are `gpu.shuffle`
(idx or xor, width 32) and reductions five xor-shuffle steps.

SIMD-group matrices, per target:
- CUDA (`CudaMatrix`): lane l holds elements (l / 4, 2 (l % 4) + j), j = 0, 1 (the
  m16n8k8 accumulator's first half); loads and stores are two scalar accesses
  a lane. `simd_mma` of float16 or bfloat16 matrices is one
  `mma.sync.aligned.m16n8k8` on the tensor cores (rows 8-15 of A zero; B's
  fragment gathered by four shuffles); of float32 matrices an exact FMA
  emulation over 24 shuffles (the tensor cores have no full-precision float32 MMA).
- Metal (`MetalMatrix`): `!gpu.mma_matrix<8x8xT>` values over the upstream
  gpu.subgroup_mma_* ops, which the MSL translator emits as simdgroup_load /
  simdgroup_multiply_accumulate / simdgroup_store; sources and destinations
  are shared arrays with a compile-time stride, and a, b and acc share one
  element type (float32 or float16), as the Metal Shading Language requires.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mlir import ir

from alloy.dialects import tile
from alloy.passes.errors import LoweringError
from alloy.passes.simt.lowering import SimtLowering, gep
from alloy.passes.simt.values import GLOBAL_PTR, Uniform

_EDGE = tile.SIMD_MATRIX


@dataclass
class ArrayRef:
    """A shared or local array: its memref's SSA name, type text and space."""

    name: str
    type: str
    space: str


@dataclass
class CudaMatrix:
    """An 8x8 SIMD-group matrix on CUDA: this lane's two elements (see the module docstring)."""

    regs: list
    elem: str


@dataclass
class MetalMatrix:
    """An 8x8 SIMD-group matrix on Metal: its simdgroup-matrix value in each operand role it was loaded for."""

    by_role: dict = field(default_factory=dict)
    elem: str = "f32"


def is_metal(lw: SimtLowering) -> bool:
    return lw.target.name == "Metal"


def matrix_type(elem: str, role: str = "COp") -> str:
    return f'!gpu.mma_matrix<{_EDGE}x{_EDGE}x{elem}, "{role}">'


# -------------------------------------------------------- values in control flow
def flat_types(lw: SimtLowering, t: ir.RankedTensorType) -> list[str]:
    elem = str(t.element_type)
    return [matrix_type(elem)] if is_metal(lw) else [elem, elem]


def flatten(lw: SimtLowering, v: ir.Value) -> list[str]:
    x = lw.val_any(v)
    if isinstance(x, MetalMatrix):
        if "COp" not in x.by_role:
            raise LoweringError("on Metal, a SIMD-group matrix carried through control flow must be an "
                                "accumulator (al.simd_matrix or an al.simd_mma result)")
        return [x.by_role["COp"]]
    return list(x.regs)


def bind(lw: SimtLowering, v: ir.Value, names: list[str]) -> list[str]:
    """Bind v to its leading names; the rest."""
    elem = str(v.type.element_type)
    if is_metal(lw):
        lw.env[v] = MetalMatrix({"COp": names[0]}, elem)
        return names[1:]
    lw.env[v] = CudaMatrix(names[:2], elem)
    return names[2:]


# --------------------------------------------------------------- threads, arrays
def lower_thread_id(lw: SimtLowering, op) -> None:
    lw.env[op.results[0]] = Uniform(lw.tid(), "i32")


def lower_alloc(lw: SimtLowering, op) -> None:
    space = ir.StringAttr(op.attributes["space"]).value
    t = op.results[0].type
    elem, n = str(t.element_type), t.shape[0]
    if space == "shared":
        name = f"%sh{len(lw.wg)}"
        lw.wg[name] = (elem, n)
        lw.env[op.results[0]] = ArrayRef(name, f"!WG<{name}>", space)
        return
    lw.env[op.results[0]] = ArrayRef(lw.pro_op(f"memref.alloca() : memref<{n}x{elem}>", "loc"),
                                     f"memref<{n}x{elem}>", space)


def _array(lw: SimtLowering, v, op) -> ArrayRef:
    x = lw.val_any(v, op)
    if not isinstance(x, ArrayRef):
        raise LoweringError("expected a shared or local array", op)
    return x


def lower_memref_load(lw: SimtLowering, op) -> None:
    a = _array(lw, op.operands[0], op)
    i = lw.val(op.operands[1], op).name
    lw.env[op.results[0]] = Uniform(lw.op(f"memref.load {a.name}[{i}] : {a.type}"), str(op.results[0].type))


def lower_memref_store(lw: SimtLowering, op) -> None:
    v = lw.val(op.operands[0], op).name
    a = _array(lw, op.operands[1], op)
    i = lw.val(op.operands[2], op).name
    lw.emit(f"memref.store {v}, {a.name}[{i}] : {a.type}")


def lower_barrier(lw: SimtLowering, op) -> None:
    lw.barrier()


# ------------------------------------------------------------ shuffles, reductions
def shuffle(lw: SimtLowering, value: str, elem: str, lane: str, mode: str) -> str:
    """`value` (of scalar type elem) from lane `lane` (idx) or this lane ^ lane (xor); 16-bit floats go as f32."""
    wide = elem in ("f16", "bf16")
    v = lw.op(f"arith.extf {value} : {elem} to f32") if wide else value
    t = "f32" if wide else elem
    prefix, names = lw.results(2)
    lw.emit(f"{prefix}gpu.shuffle {mode} {v}, {lane}, {lw.i32(tile.SIMD_SIZE)} : {t}")
    return lw.op(f"arith.truncf {names[0]} : f32 to {elem}") if wide else names[0]


def lower_shuffle(lw: SimtLowering, op) -> None:
    v = lw.val(op.operands[0], op)
    lane = lw.val(op.operands[1], op).name
    mode = ir.StringAttr(op.attributes["mode"]).value
    lw.env[op.results[0]] = Uniform(shuffle(lw, v.name, v.type, lane, mode), v.type)


_COMBINE = {("sum", True): "arith.addf", ("sum", False): "arith.addi", ("max", True): "arith.maximumf",
            ("max", False): "arith.maxsi", ("min", True): "arith.minimumf", ("min", False): "arith.minsi"}


def lower_reduce(lw: SimtLowering, op) -> None:
    v = lw.val(op.operands[0], op)
    kind = ir.StringAttr(op.attributes["kind"]).value
    combine = _COMBINE[(kind, v.type.startswith("f") or v.type == "bf16")]
    acc = v.name
    step = tile.SIMD_SIZE // 2
    while step:
        other = shuffle(lw, acc, v.type, lw.i32(step), "xor")
        acc = lw.op(f"{combine} {acc}, {other} : {v.type}")
        step //= 2
    lw.env[op.results[0]] = Uniform(acc, v.type)


# ------------------------------------------------------------------- matrices
def _constant_int(v: ir.Value, what: str, op) -> int:
    owner = v.owner
    o = owner.operation if hasattr(owner, "operation") else owner
    if isinstance(owner, ir.Block) or o.name != "arith.constant":
        raise LoweringError(f"on Metal, {what} must be a compile-time constant", op)
    return ir.IntegerAttr(o.attributes["value"]).value


def _lane_rc(lw: SimtLowering) -> tuple[str, list[str]]:
    """(row, [col for j = 0, 1]) i32 of this lane's elements in the CUDA matrix layout."""
    key = ("simd_rc",)
    if key not in lw.cache:
        lane = lw.pro_op(f"arith.andi {lw.tid()}, {lw.i32(tile.SIMD_SIZE - 1)} : i32")
        row = lw.pro_op(f"arith.shrui {lane}, {lw.i32(2)} : i32")
        quad = lw.pro_op(f"arith.andi {lane}, {lw.i32(3)} : i32")
        c0 = lw.pro_op(f"arith.shli {quad}, {lw.i32(1)} : i32")
        c1 = lw.pro_op(f"arith.addi {c0}, {lw.i32(1)} : i32")
        lw.cache[key] = (row, [c0, c1], lane, quad)
    row, cols, _, _ = lw.cache[key]
    return row, cols


def _cuda_offsets(lw: SimtLowering, off: str, stride: str) -> list[str]:
    row, cols = _lane_rc(lw)
    base = lw.op(f"arith.addi {off}, {lw.op(f'arith.muli {row}, {stride} : i32')} : i32")
    return [lw.op(f"arith.addi {base}, {c} : i32") for c in cols]


def _roles(op) -> set:
    roles = set()
    for u in op.results[0].uses:
        owner = u.owner.operation if hasattr(u.owner, "operation") else u.owner
        roles.add({1: "AOp", 2: "BOp"}.get(u.operand_number, "COp") if owner.name == "tile.simd_mma" else "COp")
    return roles or {"COp"}


def _metal_ref(lw: SimtLowering, v, op, what: str) -> ArrayRef:
    x = lw.val_any(v, op)
    if not isinstance(x, ArrayRef):
        raise LoweringError(f"on Metal, {what} must be a shared array (al.shared): simdgroup matrices load from "
                            "and store to threadgroup memory here; stage global tiles with al.coop_load", op)
    return x


def lower_fill(lw: SimtLowering, op) -> None:
    v = lw.val(op.operands[0], op)
    if is_metal(lw):
        lw.env[op.results[0]] = MetalMatrix(
            {"COp": lw.op(f"gpu.subgroup_mma_constant_matrix {v.name} : {matrix_type(v.type)}")}, v.type)
    else:
        lw.env[op.results[0]] = CudaMatrix([v.name, v.name], v.type)


def lower_simd_load(lw: SimtLowering, op) -> None:
    src, off_v, stride_v = op.operands
    elem = str(op.results[0].type.element_type)
    off = lw.val(off_v, op).name
    if is_metal(lw):
        a = _metal_ref(lw, src, op, "al.simd_load's source")
        ld = _constant_int(stride_v, "al.simd_load's stride", op)
        i = lw.op(f"arith.index_cast {off} : i32 to index")
        lw.env[op.results[0]] = MetalMatrix({role: lw.op(
            f"gpu.subgroup_mma_load_matrix {a.name}[{i}] {{leadDimension = {ld} : index}} : {a.type} -> "
            f"{matrix_type(elem, role)}") for role in sorted(_roles(op))}, elem)
        return
    idx = _cuda_offsets(lw, off, lw.val(stride_v, op).name)
    x = lw.val_any(src, op)
    if isinstance(x, ArrayRef):
        regs = [lw.op(f"memref.load {x.name}[{lw.op(f'arith.index_cast {k} : i32 to index')}] : {x.type}")
                for k in idx]
    else:
        regs = [lw.op(f"llvm.load {gep(lw, x.name, k, 'i32', elem)} : {GLOBAL_PTR} -> {elem}") for k in idx]
    lw.env[op.results[0]] = CudaMatrix(regs, elem)


def lower_simd_store(lw: SimtLowering, op) -> None:
    m_v, dst, off_v, stride_v = op.operands
    elem = str(m_v.type.element_type)
    off = lw.val(off_v, op).name
    m = lw.val_any(m_v, op)
    if is_metal(lw):
        a = _metal_ref(lw, dst, op, "al.simd_store's destination")
        ld = _constant_int(stride_v, "al.simd_store's stride", op)
        i = lw.op(f"arith.index_cast {off} : i32 to index")
        lw.emit(f"gpu.subgroup_mma_store_matrix {flatten(lw, m_v)[0]}, {a.name}[{i}] {{leadDimension = {ld} : index}} "
                f": {matrix_type(elem)}, {a.type}")
        return
    idx = _cuda_offsets(lw, off, lw.val(stride_v, op).name)
    x = lw.val_any(dst, op)
    for r, k in zip(m.regs, idx):
        if isinstance(x, ArrayRef):
            lw.emit(f"memref.store {r}, {x.name}[{lw.op(f'arith.index_cast {k} : i32 to index')}] : {x.type}")
        else:
            lw.emit(f"llvm.store {r}, {gep(lw, x.name, k, 'i32', elem)} : {elem}, {GLOBAL_PTR}")


def lower_simd_mma(lw: SimtLowering, op) -> None:
    acc_v, a_v, b_v = op.operands
    c_elem = str(acc_v.type.element_type)
    ab_elem = str(a_v.type.element_type)
    if is_metal(lw):
        a, b, c = (lw.val_any(v, op) for v in (a_v, b_v, acc_v))
        if len({c_elem, ab_elem}) != 1 or c_elem == "bf16":
            raise LoweringError("on Metal, al.simd_mma's acc, a and b must all be float32 or all float16 (the "
                                "Metal Shading Language's simdgroup_multiply_accumulate takes one element type)", op)
        for m, role in ((a, "AOp"), (b, "BOp"), (c, "COp")):
            if role not in m.by_role:
                raise LoweringError(f"on Metal, al.simd_mma's {role[0].lower()} operand must come straight from "
                                    "al.simd_load (or be an accumulator, for acc)", op)
        r = lw.op(f"gpu.subgroup_mma_compute {a.by_role['AOp']}, {b.by_role['BOp']}, {c.by_role['COp']} : "
                  f"{matrix_type(ab_elem, 'AOp')}, {matrix_type(ab_elem, 'BOp')} -> {matrix_type(c_elem)}")
        lw.env[op.results[0]] = MetalMatrix({"COp": r}, c_elem)
        return
    a, b, c = (lw.val_any(v, op) for v in (a_v, b_v, acc_v))
    acc = [_to_f32(lw, x, c_elem) for x in c.regs]
    if ab_elem in ("f16", "bf16"):
        out = _mma_m16n8k8(lw, a, b, acc, ab_elem)
    else:
        out = _fma_emulation(lw, a, b, acc)
    if c_elem != "f32":
        out = [lw.op(f"arith.truncf {x} : f32 to {c_elem}") for x in out]
    lw.env[op.results[0]] = CudaMatrix(out, c_elem)


def _to_f32(lw: SimtLowering, x: str, elem: str) -> str:
    return x if elem == "f32" else lw.op(f"arith.extf {x} : {elem} to f32")


def _fma_emulation(lw: SimtLowering, a: CudaMatrix, b: CudaMatrix, acc: list[str]) -> list[str]:
    """acc[j] += sum_k A[row][k] B[k][col_j]: A's row from the lanes of this quad-row, B's column by lane."""
    _lane_rc(lw)
    _, _, lane, quad = lw.cache[("simd_rc",)]
    group = lw.op(f"arith.andi {lane}, {lw.i32(~3)} : i32")
    out = list(acc)
    for k in range(_EDGE):
        src_a = lw.op(f"arith.ori {group}, {lw.i32(k >> 1)} : i32")
        ak = _to_f32(lw, shuffle(lw, a.regs[k & 1], a.elem, src_a, "idx"), a.elem)
        src_b = lw.op(f"arith.ori {quad}, {lw.i32(k << 2)} : i32")
        for j in range(2):
            bk = _to_f32(lw, shuffle(lw, b.regs[j], b.elem, src_b, "idx"), b.elem)
            out[j] = lw.op(f"math.fma {ak}, {bk}, {out[j]} : f32")
    return out


def _pack(lw: SimtLowering, lo: str, hi: str, elem: str) -> str:
    v = lw.op(f"vector.from_elements {lo}, {hi} : vector<2x{elem}>")
    return lw.op(f"llvm.bitcast {v} : vector<2x{elem}> to i32")


def _mma_m16n8k8(lw: SimtLowering, a: CudaMatrix, b: CudaMatrix, acc: list[str], elem: str) -> list[str]:
    """One tensor-core mma.sync.m16n8k8 (row.col, f32 accumulate): A's rows 0-7 are ours, rows 8-15 zero;
    B's fragment (k = 2 (lane % 4) + j, n = lane / 4) gathered from our layout by shuffles."""
    row, _ = _lane_rc(lw)
    _, _, _, quad = lw.cache[("simd_rc",)]
    a0 = _pack(lw, a.regs[0], a.regs[1], elem)
    zero_i = lw.i32(0)
    half = lw.op(f"arith.shrui {row}, {lw.i32(1)} : i32")  # n / 2: the lane holding column n of a B row
    odd = lw.op(f"arith.andi {row}, {lw.i32(1)} : i32")
    pick_hi = lw.op(f"arith.cmpi ne, {odd}, {zero_i} : i32")
    bk = []
    for j in range(2):
        k = lw.op(f"arith.addi {lw.op(f'arith.shli {quad}, {lw.i32(1)} : i32')}, {lw.i32(j)} : i32")
        src = lw.op(f"arith.ori {lw.op(f'arith.shli {k}, {lw.i32(2)} : i32')}, {half} : i32")
        r0 = shuffle(lw, b.regs[0], elem, src, "idx")
        r1 = shuffle(lw, b.regs[1], elem, src, "idx")
        bk.append(lw.op(f"arith.select {pick_hi}, {r1}, {r0} : {elem}"))
    b0 = _pack(lw, bk[0], bk[1], elem)
    zero_f = lw.const("0.000000e+00", "f32")
    kind = "f16" if elem == "f16" else "bf16"
    text = f"mma.sync.aligned.m16n8k8.row.col.f32.{kind}.{kind}.f32 {{$0,$1,$2,$3}}, {{$4,$5}}, {{$6}}, {{$7,$8,$9,$10}};"
    struct = "!llvm.struct<(f32, f32, f32, f32)>"
    args = [a0, zero_i, b0, acc[0], acc[1], zero_f, zero_f]
    d = lw.op(f'llvm.inline_asm "{text}", "=f,=f,=f,=f,r,r,r,f,f,f,f" {", ".join(args)} : '
              f'(i32, i32, i32, f32, f32, f32, f32) -> {struct}')
    return [lw.op(f"llvm.extractvalue {d}[{j}] : {struct}") for j in range(2)]


HANDLERS = {
    "tile.thread_id": lower_thread_id, "tile.alloc": lower_alloc, "memref.load": lower_memref_load,
    "memref.store": lower_memref_store, "tile.barrier": lower_barrier, "tile.simd_shuffle": lower_shuffle,
    "tile.simd_reduce": lower_reduce, "tile.simd_fill": lower_fill, "tile.simd_load": lower_simd_load,
    "tile.simd_store": lower_simd_store, "tile.simd_mma": lower_simd_mma,
}
