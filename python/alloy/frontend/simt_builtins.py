"""Code generation for the thread-level (SIMT) builtins (language/simt.py).

Calling any of them marks the kernel a SIMT kernel (`gen.simt`): codegen
then records the threadgroup size on the function (`tile.threads`) and
tile-verify rejects tiles in it. Shared and local arrays are `tile.alloc`
memrefs read and written with memref.load / memref.store; SIMD-group
matrices are 8x8 tensors made and used only by the tile.simd_* ops.
"""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith, memref, scf

from ..dialects import tile
from ..language import dtypes as dt
from . import values as V
from .values import ArrayArg, SimdMatrix, ThreadArray

SHARED_LIMIT_BYTES = 32 * 1024  # threadgroup memory a kernel may declare (Metal's limit; CUDA allows 48 KiB)
_SHUFFLE_TYPES = (dt.float32, dt.int32, dt.uint32)
_MATRIX_TYPES = (dt.float32, dt.float16, dt.bfloat16)


def _simt(gen):
    gen.simt = True
    gen.written.add("?")  # shared-memory and SIMD-group stores are not traced to parameters


def _int_const(v, what):
    if isinstance(v, V.TileValue) or not isinstance(v, int) or isinstance(v, bool):
        raise V.SemanticError(f"{what} must be a compile-time integer (a literal or al.constexpr)")
    return v


def _dtype(d, what):
    if d is None:
        return dt.float32
    if not isinstance(d, dt.dtype):
        raise V.SemanticError(f"{what}: expected an al dtype (e.g. al.float32), got {d!r}")
    return d


def _i32(gen, v, what) -> V.TileValue:
    """A scalar int32 operand (Python ints become constants)."""
    x = V.to_tv(gen.operand(v, gen.node)) if not isinstance(v, V.TileValue) else v
    if x.is_tile or x.is_ptr or not x.dtype.is_int:
        raise V.SemanticError(f"{what} must be a scalar integer, got {x.describe()}")
    return V.cast(x, dt.int32)


def _index(gen, v, what) -> ir.Value:
    return arith.index_cast(ir.IndexType.get(), _i32(gen, v, what).value)


# ------------------------------------------------------------------ threads
def thread_id(gen):
    _simt(gen)
    return V.TileValue(tile.thread_id(), dt.int32, sym=("arange", 0, gen.threads))


def num_threads(gen):
    _simt(gen)
    return gen.threads


def simd_size(gen):
    _simt(gen)
    return tile.SIMD_SIZE


def simd_lane(gen):
    return V.binary("and", thread_id(gen), tile.SIMD_SIZE - 1)


def simd_group(gen):
    return V.binary("floordiv", thread_id(gen), tile.SIMD_SIZE)


def barrier(gen):
    _simt(gen)
    tile.barrier()


# ------------------------------------------------------------------ arrays
def _alloc(space):
    def impl(gen, n, dtype=None):
        _simt(gen)
        n = _int_const(n, f"al.{space} size")
        d = _dtype(dtype, f"al.{space}")
        if n <= 0:
            raise V.SemanticError(f"al.{space} needs a positive size, got {n}")
        if d.is_bool:
            raise V.SemanticError(f"al.{space} arrays hold numbers; store booleans as al.int8")
        if space == "shared":
            gen.shared_bytes += n * d.bits // 8
            if gen.shared_bytes > SHARED_LIMIT_BYTES:
                raise V.SemanticError(f"shared arrays take {gen.shared_bytes} bytes, over the "
                                      f"{SHARED_LIMIT_BYTES}-byte threadgroup-memory limit")
        return ThreadArray(tile.alloc(space, n, d.to_ir()), d, n, space)
    return impl


def array_load(gen, arr: ThreadArray, index) -> V.TileValue:
    return V.TileValue(memref.load(arr.value, [_index(gen, index, f"an index into a {arr.space} array")]), arr.dtype)


def array_store(gen, arr: ThreadArray, index, value) -> None:
    v = gen.operand(value, gen.node)
    if isinstance(v, V.TileValue) and (v.is_tile or v.is_ptr):
        raise V.SemanticError(f"a {arr.space} array element takes a scalar, got {v.describe()}")
    v = V.cast(V.to_tv(v, V.TileValue(None, arr.dtype)), arr.dtype)
    memref.store(v.value, arr.value, [_index(gen, index, f"an index into a {arr.space} array")])


def _global_ptr(gen, p, what) -> V.TileValue:
    if isinstance(p, ArrayArg):
        p = p.ptr
    if not isinstance(p, V.TileValue) or not p.is_ptr or p.is_tile:
        raise V.SemanticError(f"{what} must be a pointer (an array parameter plus an offset), got "
                              f"{p.describe() if hasattr(p, 'describe') else type(p).__name__}")
    return p


def _array(p, what) -> ThreadArray:
    if not isinstance(p, ThreadArray):
        raise V.SemanticError(f"{what} must be an al.shared or al.local array, got "
                              f"{p.describe() if hasattr(p, 'describe') else type(p).__name__}")
    return p


def coop_load(gen, buf, src, size):
    """for i in range(thread_id, size, threads): buf[i] = src[i]; then a barrier."""
    arr = _array(buf, "al.coop_load's destination")
    if arr.space != "shared":
        raise V.SemanticError("al.coop_load fills a shared array (al.shared); copy into a local array with al.copy4")
    p = _global_ptr(gen, src, "al.coop_load's source")
    if isinstance(size, int) and size > arr.size:
        raise V.SemanticError(f"al.coop_load of {size} elements overflows a shared array of {arr.size}")
    idx = ir.IndexType.get()
    lo = arith.index_cast(idx, thread_id(gen).value)
    hi = _index(gen, size, "al.coop_load's size")
    step = arith.constant(idx, gen.threads)
    loop = scf.ForOp(lo, hi, step)
    with ir.InsertionPoint(loop.body):
        i = loop.induction_variable
        x = tile.load(tile.addptr(p.value, arith.index_cast(ir.IntegerType.get_signless(32), i)))
        memref.store(V.cast(V.TileValue(x, p.dtype), arr.dtype).value, arr.value, [i])
        scf.YieldOp([])
    tile.barrier()


def copy4(gen, dst, offset, src):
    arr = _array(dst, "al.copy4's destination")
    p = _global_ptr(gen, src, "al.copy4's source")
    off = _i32(gen, offset, "al.copy4's offset")
    for j in range(4):
        x = V.TileValue(tile.load(tile.addptr(p.value, V.const(j, dt.int32).value)), p.dtype)
        array_store(gen, arr, V.binary("add", off, j), x)


# ------------------------------------------------------------------ SIMD groups
def _lane_value(gen, value, what) -> tuple[V.TileValue, dt.dtype]:
    v = V.to_tv(gen.operand(value, gen.node)) if not isinstance(value, V.TileValue) else value
    if v.is_tile or v.is_ptr:
        raise V.SemanticError(f"{what} takes a scalar, got {v.describe()}")
    d = v.dtype
    if d in _SHUFFLE_TYPES:
        return v, d
    if d.is_float:  # float16 / bfloat16 travel as float32
        return V.cast(v, dt.float32), d
    if d.is_int or d.is_bool:
        return V.cast(v, dt.int32), d
    raise V.SemanticError(f"{what} cannot move a value of type {d.name}")


def _shuffle(gen, value, lane, mode):
    _simt(gen)
    what = "al.simd_shuffle" if mode == "idx" else "al.simd_shuffle_xor"
    v, d = _lane_value(gen, value, what)
    lane_v = _i32(gen, lane, f"{what}'s {'lane' if mode == 'idx' else 'mask'}")
    lane_v = V.binary("and", lane_v, tile.SIMD_SIZE - 1)
    return V.cast(V.TileValue(tile.simd_shuffle(v.value, lane_v.value, mode), v.dtype), d)


def simd_shuffle(gen, value, lane):
    return _shuffle(gen, value, lane, "idx")


def simd_shuffle_xor(gen, value, mask):
    return _shuffle(gen, value, mask, "xor")


def simd_reduce(gen, value, op="sum"):
    _simt(gen)
    if op not in tile.SIMD_REDUCE_KINDS:
        raise V.SemanticError(f"al.simd_reduce op must be one of {', '.join(tile.SIMD_REDUCE_KINDS)}, got {op!r}")
    v, d = _lane_value(gen, value, "al.simd_reduce")
    return V.cast(V.TileValue(tile.simd_reduce(v.value, op), v.dtype), d)


def simd_matrix(gen, dtype=None, value=0):
    _simt(gen)
    d = _dtype(dtype, "al.simd_matrix")
    if d not in _MATRIX_TYPES:
        raise V.SemanticError(f"SIMD-group matrices hold float32, float16 or bfloat16, not {d.name}")
    fill = V.cast(V.to_tv(gen.operand(value, gen.node), V.TileValue(None, d)), d)
    if fill.is_tile or fill.is_ptr:
        raise V.SemanticError("al.simd_matrix's value must be a scalar")
    return SimdMatrix(tile.simd_fill(fill.value), d)


def _matrix_ref(gen, ref, what):
    """(IR value, dtype) of a simd_load/simd_store memory operand: a shared array or a global pointer."""
    if isinstance(ref, ThreadArray):
        if ref.space != "shared":
            raise V.SemanticError(f"{what} reads and writes shared arrays or global pointers, not local arrays")
        return ref.value, ref.dtype
    p = _global_ptr(gen, ref, what)
    return p.value, p.dtype


def simd_load(gen, src, offset, stride):
    _simt(gen)
    v, d = _matrix_ref(gen, src, "al.simd_load's source")
    if d not in _MATRIX_TYPES:
        raise V.SemanticError(f"al.simd_load reads float32, float16 or bfloat16, not {d.name}")
    off, st = _i32(gen, offset, "al.simd_load's offset"), _i32(gen, stride, "al.simd_load's stride")
    return SimdMatrix(tile.simd_load(v, off.value, st.value), d)


def _matrix(m, what) -> SimdMatrix:
    if not isinstance(m, SimdMatrix):
        raise V.SemanticError(f"{what} must be a SIMD-group matrix (al.simd_matrix / al.simd_load), got "
                              f"{m.describe() if hasattr(m, 'describe') else type(m).__name__}")
    return m


def simd_mma(gen, acc, a, b):
    _simt(gen)
    c, a, b = _matrix(acc, "al.simd_mma's acc"), _matrix(a, "al.simd_mma's a"), _matrix(b, "al.simd_mma's b")
    if a.dtype != b.dtype:
        raise V.SemanticError(f"al.simd_mma's a and b must share a dtype, got {a.dtype.name} and {b.dtype.name}")
    return SimdMatrix(tile.simd_mma(c.value, a.value, b.value), c.dtype)


def simd_store(gen, m, dst, offset, stride):
    _simt(gen)
    m = _matrix(m, "al.simd_store's matrix")
    v, d = _matrix_ref(gen, dst, "al.simd_store's destination")
    if d != m.dtype:
        raise V.SemanticError(f"al.simd_store of a {m.dtype.name} matrix into {d.name} memory; convert first")
    off, st = _i32(gen, offset, "al.simd_store's offset"), _i32(gen, stride, "al.simd_store's stride")
    tile.simd_store(m.value, v, off.value, st.value)


SIMT_BUILTINS = {
    "thread_id": thread_id, "num_threads": num_threads, "simd_lane": simd_lane, "simd_group": simd_group,
    "simd_size": simd_size, "shared": _alloc("shared"), "local": _alloc("local"), "barrier": barrier,
    "coop_load": coop_load, "copy4": copy4, "simd_shuffle": simd_shuffle, "simd_shuffle_xor": simd_shuffle_xor,
    "simd_reduce": simd_reduce, "simd_matrix": simd_matrix, "simd_load": simd_load, "simd_mma": simd_mma,
    "simd_store": simd_store,
}
