"""The `tile` dialect: Alloy's tile-level IR, defined with IRDL.

Tiles are builtin ranked tensors with static shapes (`tensor<64x64xf32>`);
pointers are `!tile.ptr<T>`, and tiles of pointers are tensors of them.
Elementwise math on scalars and tiles is upstream `arith`/`math`; control
flow is `scf`. The ops below are the rest (modelled on Triton's `tt`):

  program_id / num_programs  {axis}            -> i32
  arange                     {start, end}      -> tensor<Nxi32>
  splat      (scalar)                          -> tensor (any element type)
  broadcast  (tensor)                          -> tensor (size-1 dims widened)
  expand_dims(tensor)        {axis}            -> tensor (a unit dim inserted)
  reshape    (tensor)                          -> tensor (same element count)
  trans      (tensor)                          -> tensor (2-D transpose)
  addptr     (ptr, offset)                     -> ptr    (offset in elements; same shape)
  load       (ptr, mask?, other?)              -> value  (masked-off lanes read `other`, else 0)
  store      (ptr, value, mask?)
  atomic_rmw (ptr, value, mask?) {kind}        -> old value  (kind: add|max|min|xchg)
  atomic_cas (ptr, cmp, value)                 -> old value
  reduce     (tile) {axis, kind}               -> tile of rank-1 or a scalar (kind: sum|max|min|argmax|argmin)
  dot        (a: MxK, b: KxN, acc: MxN)        -> MxN   (acc + a @ b)

Thread-level (SIMT) ops, in kernels that use `al.thread_id()` and friends
(the function carries `tile.threads`, the threadgroup size):

  thread_id                                    -> i32    (position in the threadgroup)
  alloc                      {space}           -> memref<NxT> (space: shared|local), read and
                                                  written with memref.load / memref.store
  barrier                                               (threadgroup barrier)
  simd_shuffle (value, lane: i32) {mode}       -> value  (mode: idx|xor; 32-lane SIMD groups)
  simd_reduce  (value) {kind}                  -> value  (kind: sum|max|min over the SIMD group)
  simd_fill    (scalar)                        -> tensor<8x8xT> (a SIMD-group matrix)
  simd_load    (src, offset: i32, stride: i32) -> tensor<8x8xT> (src: !tile.ptr or memref)
  simd_mma     (acc, a, b)                     -> tensor<8x8xT> (acc + a @ b)
  simd_store   (m, dst, offset: i32, stride: i32)

The CPU target runs a threadgroup's threads as loops (passes/threads_to_loops.py),
with shared and local arrays as stack buffers (`stack_alloc {size} -> !tile.ptr`).

IRDL ops carry no traits and print in generic form only. Integer attributes
are i64; `kind` attributes are strings.
"""
from __future__ import annotations

from functools import lru_cache

from mlir import ir

TILE_IRDL = r"""
irdl.dialect @tile {
  irdl.type @ptr {
    %e = irdl.any
    irdl.parameters(elem: %e)
  }
  irdl.operation @program_id {
    %i = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %i }
    %r = irdl.is i32
    irdl.results(res: %r)
  }
  irdl.operation @num_programs {
    %i = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %i }
    %r = irdl.is i32
    irdl.results(res: %r)
  }
  irdl.operation @arange {
    %s = irdl.base "#builtin.integer"
    %e = irdl.base "#builtin.integer"
    irdl.attributes { "start" = %s, "end" = %e }
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @splat {
    %a = irdl.any
    irdl.operands(src: %a)
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @broadcast {
    %a = irdl.base "!builtin.tensor"
    irdl.operands(src: %a)
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @expand_dims {
    %a = irdl.base "!builtin.tensor"
    irdl.operands(src: %a)
    %i = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %i }
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @reshape {
    %a = irdl.base "!builtin.tensor"
    irdl.operands(src: %a)
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @trans {
    %a = irdl.base "!builtin.tensor"
    irdl.operands(src: %a)
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @addptr {
    %p = irdl.any
    %o = irdl.any
    irdl.operands(ptr: %p, offset: %o)
    %r = irdl.any
    irdl.results(res: %r)
  }
  irdl.operation @load {
    %p = irdl.any
    %m = irdl.any
    %o = irdl.any
    irdl.operands(ptr: %p, mask: optional %m, other: optional %o)
    %r = irdl.any
    irdl.results(res: %r)
  }
  irdl.operation @store {
    %p = irdl.any
    %v = irdl.any
    %m = irdl.any
    irdl.operands(ptr: %p, value: %v, mask: optional %m)
  }
  irdl.operation @atomic_rmw {
    %p = irdl.any
    %v = irdl.any
    %m = irdl.any
    irdl.operands(ptr: %p, value: %v, mask: optional %m)
    %s = irdl.base "#builtin.string"
    irdl.attributes { "kind" = %s }
    %r = irdl.any
    irdl.results(res: %r)
  }
  irdl.operation @atomic_cas {
    %p = irdl.any
    %c = irdl.any
    %v = irdl.any
    irdl.operands(ptr: %p, cmp: %c, value: %v)
    %r = irdl.any
    irdl.results(res: %r)
  }
  irdl.operation @reduce {
    %a = irdl.base "!builtin.tensor"
    irdl.operands(src: %a)
    %i = irdl.base "#builtin.integer"
    %s = irdl.base "#builtin.string"
    irdl.attributes { "axis" = %i, "kind" = %s }
    %r = irdl.any
    irdl.results(res: %r)
  }
  irdl.operation @dot {
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    %c = irdl.base "!builtin.tensor"
    irdl.operands(a: %a, b: %b, acc: %c)
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @thread_id {
    %r = irdl.is i32
    irdl.results(res: %r)
  }
  irdl.operation @alloc {
    %s = irdl.base "#builtin.string"
    irdl.attributes { "space" = %s }
    %r = irdl.base "!builtin.memref"
    irdl.results(res: %r)
  }
  irdl.operation @stack_alloc {
    %i = irdl.base "#builtin.integer"
    irdl.attributes { "size" = %i }
    %r = irdl.any
    irdl.results(res: %r)
  }
  irdl.operation @barrier {
  }
  irdl.operation @simd_shuffle {
    %v = irdl.any
    %l = irdl.is i32
    irdl.operands(value: %v, lane: %l)
    %s = irdl.base "#builtin.string"
    irdl.attributes { "mode" = %s }
    %r = irdl.any
    irdl.results(res: %r)
  }
  irdl.operation @simd_reduce {
    %v = irdl.any
    irdl.operands(value: %v)
    %s = irdl.base "#builtin.string"
    irdl.attributes { "kind" = %s }
    %r = irdl.any
    irdl.results(res: %r)
  }
  irdl.operation @simd_fill {
    %v = irdl.any
    irdl.operands(value: %v)
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @simd_load {
    %p = irdl.any
    %o = irdl.is i32
    %s = irdl.is i32
    irdl.operands(src: %p, offset: %o, stride: %s)
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @simd_mma {
    %c = irdl.base "!builtin.tensor"
    %a = irdl.base "!builtin.tensor"
    %b = irdl.base "!builtin.tensor"
    irdl.operands(acc: %c, a: %a, b: %b)
    %r = irdl.base "!builtin.tensor"
    irdl.results(res: %r)
  }
  irdl.operation @simd_store {
    %m = irdl.base "!builtin.tensor"
    %p = irdl.any
    %o = irdl.is i32
    %s = irdl.is i32
    irdl.operands(value: %m, dst: %p, offset: %o, stride: %s)
  }
}
"""

REDUCE_KINDS = ("sum", "max", "min", "argmax", "argmin")
ATOMIC_KINDS = ("add", "max", "min", "xchg")
SIMD_REDUCE_KINDS = ("sum", "max", "min")
SIMD_SIZE = 32  # lanes of a SIMD group (a CUDA warp, a Metal simdgroup, the CPU simulation's)
SIMD_MATRIX = 8  # edge of a SIMD-group matrix
ARRAY_SPACES = ("shared", "local")


def load_dialect(ctx: ir.Context) -> None:
    """Register the tile dialect in `ctx` (idempotent per context)."""
    if getattr(ctx, "_alloy_tile_loaded", False):
        return
    from mlir.dialects import irdl

    module = ir.Module.parse(TILE_IRDL, ctx)
    irdl.load_dialects(module)
    ctx._alloy_tile_loaded = True


def new_context() -> ir.Context:
    """A fresh MLIR context with every upstream dialect and `tile` loaded."""
    ctx = ir.Context()
    load_dialect(ctx)
    return ctx


# ----------------------------------------------------------------- types
def kernel_funcs(module_op) -> list:
    """The tile kernel functions of a module (those marked tile.kernel, else the only func)."""
    body = module_op.regions[0].blocks[0]
    funcs = [o for o in body.operations if o.operation.name == "func.func"]
    marked = [f for f in funcs if "tile.kernel" in f.attributes]
    if marked:
        return marked
    return funcs if len(funcs) == 1 else []


def ptr_type(elem: ir.Type) -> ir.Type:
    return ir.Type.parse(f"!tile.ptr<{elem}>")


def is_ptr(t: ir.Type) -> bool:
    """Whether `t` is a `!tile.ptr<...>` (by its TypeID, the one type the tile dialect defines)."""
    ctx = t.context
    typeid = getattr(ctx, "_alloy_ptr_typeid", None)
    if typeid is None:
        typeid = ir.Type.parse("!tile.ptr<i8>", ctx).typeid
        ctx._alloy_ptr_typeid = typeid
    return t.typeid == typeid


def ptr_elem(t: ir.Type) -> ir.Type:
    """The pointee type of a `!tile.ptr` (read from the type's text: IRDL types expose no parameters
    to the Python bindings)."""
    s = str(t)
    if not s.startswith("!tile.ptr<"):
        raise TypeError(f"not a tile pointer type: {s}")
    return ir.Type.parse(s[len("!tile.ptr<"):-1])


def tile_type(shape, elem: ir.Type) -> ir.RankedTensorType:
    return ir.RankedTensorType.get(list(shape), elem)


def element_type(t: ir.Type) -> ir.Type:
    """Element type of a tile, or the type itself for a scalar."""
    if isinstance(t, ir.RankedTensorType):
        return t.element_type
    return t


def shape_of(t: ir.Type) -> tuple[int, ...] | None:
    """Static shape of a tile, None for a scalar."""
    if isinstance(t, ir.RankedTensorType):
        return tuple(t.shape)
    return None


# ------------------------------------------------------------- op helpers
def _i64(v: int) -> ir.IntegerAttr:
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), int(v))


def _op(name, results, operands, attributes=None):
    op = ir.Operation.create(name, results=results, operands=operands, attributes=attributes or {})
    return op.results[0] if results else op


def program_id(axis: int) -> ir.Value:
    return _op("tile.program_id", [ir.IntegerType.get_signless(32)], [], {"axis": _i64(axis)})


def num_programs(axis: int) -> ir.Value:
    return _op("tile.num_programs", [ir.IntegerType.get_signless(32)], [], {"axis": _i64(axis)})


def arange(start: int, end: int) -> ir.Value:
    t = tile_type([end - start], ir.IntegerType.get_signless(32))
    return _op("tile.arange", [t], [], {"start": _i64(start), "end": _i64(end)})


def splat(x: ir.Value, shape) -> ir.Value:
    return _op("tile.splat", [tile_type(shape, x.type)], [x])


def broadcast(x: ir.Value, shape) -> ir.Value:
    return _op("tile.broadcast", [tile_type(shape, element_type(x.type))], [x])


def expand_dims(x: ir.Value, axis: int) -> ir.Value:
    shape = list(shape_of(x.type))
    shape.insert(axis, 1)
    return _op("tile.expand_dims", [tile_type(shape, element_type(x.type))], [x], {"axis": _i64(axis)})


def reshape(x: ir.Value, shape) -> ir.Value:
    return _op("tile.reshape", [tile_type(shape, element_type(x.type))], [x])


def trans(x: ir.Value) -> ir.Value:
    m, n = shape_of(x.type)
    return _op("tile.trans", [tile_type([n, m], element_type(x.type))], [x])


def addptr(ptr: ir.Value, offset: ir.Value) -> ir.Value:
    return _op("tile.addptr", [ptr.type], [ptr, offset])


def _loaded_type(ptr: ir.Value) -> ir.Type:
    shape = shape_of(ptr.type)
    elem = ptr_elem(element_type(ptr.type))
    return elem if shape is None else tile_type(shape, elem)


def load(ptr: ir.Value, mask: ir.Value | None = None, other: ir.Value | None = None) -> ir.Value:
    operands = [ptr] + ([mask] if mask is not None else []) + ([other] if other is not None else [])
    seg = ir.DenseI32ArrayAttr.get([1, int(mask is not None), int(other is not None)])
    return _op("tile.load", [_loaded_type(ptr)], operands, {"operandSegmentSizes": seg})


def load_operands(op) -> tuple:
    """(ptr, mask or None, other or None) of a tile.load operation."""
    seg = list(op.attributes["operandSegmentSizes"]) if "operandSegmentSizes" in op.attributes else [1, 0, 0]
    ops = list(op.operands)
    return ops[0], (ops[1] if seg[1] else None), (ops[1 + seg[1]] if seg[2] else None)


def store(ptr: ir.Value, value: ir.Value, mask: ir.Value | None = None):
    operands = [ptr, value] + ([mask] if mask is not None else [])
    return _op("tile.store", [], operands)


def atomic_rmw(kind: str, ptr: ir.Value, value: ir.Value, mask: ir.Value | None = None) -> ir.Value:
    assert kind in ATOMIC_KINDS, kind
    operands = [ptr, value] + ([mask] if mask is not None else [])
    return _op("tile.atomic_rmw", [value.type], operands, {"kind": ir.StringAttr.get(kind)})


def atomic_cas(ptr: ir.Value, cmp: ir.Value, value: ir.Value) -> ir.Value:
    return _op("tile.atomic_cas", [value.type], [ptr, cmp, value])


def reduce(x: ir.Value, axis: int, kind: str) -> ir.Value:
    assert kind in REDUCE_KINDS, kind
    shape = list(shape_of(x.type))
    del shape[axis]
    elem = element_type(x.type)
    if kind in ("argmax", "argmin"):
        elem = ir.IntegerType.get_signless(32)
    rtype = tile_type(shape, elem) if shape else elem
    return _op("tile.reduce", [rtype], [x], {"axis": _i64(axis), "kind": ir.StringAttr.get(kind)})


def dot(a: ir.Value, b: ir.Value, acc: ir.Value) -> ir.Value:
    return _op("tile.dot", [acc.type], [a, b, acc])


# ------------------------------------------------------- thread-level ops
def _i32_type() -> ir.Type:
    return ir.IntegerType.get_signless(32)


def thread_id() -> ir.Value:
    return _op("tile.thread_id", [_i32_type()], [])


def alloc(space: str, size: int, elem: ir.Type) -> ir.Value:
    assert space in ARRAY_SPACES, space
    return _op("tile.alloc", [ir.MemRefType.get([size], elem)], [], {"space": ir.StringAttr.get(space)})


def stack_alloc(size: int, elem: ir.Type) -> ir.Value:
    return _op("tile.stack_alloc", [ptr_type(elem)], [], {"size": _i64(size)})


def barrier():
    return _op("tile.barrier", [], [])


def simd_shuffle(value: ir.Value, lane: ir.Value, mode: str) -> ir.Value:
    assert mode in ("idx", "xor"), mode
    return _op("tile.simd_shuffle", [value.type], [value, lane], {"mode": ir.StringAttr.get(mode)})


def simd_reduce(value: ir.Value, kind: str) -> ir.Value:
    assert kind in SIMD_REDUCE_KINDS, kind
    return _op("tile.simd_reduce", [value.type], [value], {"kind": ir.StringAttr.get(kind)})


def simd_matrix_type(elem: ir.Type) -> ir.RankedTensorType:
    return tile_type([SIMD_MATRIX, SIMD_MATRIX], elem)


def simd_fill(value: ir.Value) -> ir.Value:
    return _op("tile.simd_fill", [simd_matrix_type(value.type)], [value])


def simd_load(src: ir.Value, offset: ir.Value, stride: ir.Value) -> ir.Value:
    t = src.type
    elem = t.element_type if isinstance(t, ir.MemRefType) else ptr_elem(t)
    return _op("tile.simd_load", [simd_matrix_type(elem)], [src, offset, stride])


def simd_mma(acc: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
    return _op("tile.simd_mma", [acc.type], [acc, a, b])


def simd_store(m: ir.Value, dst: ir.Value, offset: ir.Value, stride: ir.Value):
    return _op("tile.simd_store", [], [m, dst, offset, stride])


def array_space(v: ir.Value) -> str | None:
    """'shared' or 'local' for a value made by tile.alloc, else None."""
    owner = v.owner
    if isinstance(owner, ir.Block):
        return None
    op = owner.operation if hasattr(owner, "operation") else owner
    if op.name != "tile.alloc":
        return None
    return ir.StringAttr(op.attributes["space"]).value


@lru_cache(maxsize=None)
def op_names() -> tuple[str, ...]:
    """Names of every tile op, for passes that dispatch on them."""
    import re

    return tuple("tile." + n for n in re.findall(r"irdl\.operation @(\w+)", TILE_IRDL))
