"""convert-tile-to-vector: lower a tile kernel to vector/scf/memref/arith with the CPU entry ABI.

The kernel function is rebuilt (as MLIR text, parsed back into the module):
tiles become `vector` values of the same shape, scalars stay scalars, scf
control flow is re-created with converted types. A pointer is an element
offset from exactly one kernel `!tile.ptr` argument: an `index` scalar part
plus, for pointer tiles, a `vector<...xi64>` per-element part. Each base
argument is viewed as a `memref<?xT>` built from its raw address.

The function becomes `name.program(pointers..., scalars..., pid0..2, num0..2)`
(one program instance; pointer parameters are `noalias`, so that LLVM may
interleave the loads and stores of different arguments) and the entry point
of docs/cpu-abi.md that calls it for each linear program id in [begin, end):
    void name(const int64_t *args, int64_t begin, int64_t end, int64_t g0, int64_t g1, int64_t g2)

Control flow is in tile_scf.py, memory ops in tile_memory.py, reductions in
tile_reduce.py, dot in dot_to_fma.py, strip-mining (loops over chunks) in stripmine.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from mlir import ir

from alloy.dialects import tile
from alloy.passes.contiguity import AxisInfo
from alloy.passes.errors import LoweringError
from alloy.passes.vector.target import AVX512, VectorTarget

CONTRACT = ("arith.addf", "arith.subf", "arith.mulf")
_MEM_SIZE = 1 << 62  # memref views of kernel arguments have no known size


@dataclass
class Sc:
    """A converted non-pointer value: SSA name and MLIR type text."""

    name: str
    type: str


@dataclass
class Ptr:
    """A pointer (tile): element offset from kernel pointer argument `base`."""

    base: int
    soff: str | None  # `index` scalar part (None: 0)
    voff: str | None  # vector<shape x i64> per-element part (None: 0)
    shape: tuple | None
    elem: str  # pointee type


def vtype(shape, elem: str) -> str:
    return "vector<" + "x".join(str(n) for n in shape) + f"x{elem}>"


def zero_text(elem: str) -> str:
    if elem == "i1":
        return "false"
    if elem.startswith("i") or elem == "index":
        return "0"
    return "0.000000e+00"


def is_float(elem: str) -> bool:
    return elem in ("f16", "bf16", "f32", "f64")


class Lowering:
    """Rebuilds one tile kernel function as text."""

    def __init__(self, func, target: VectorTarget) -> None:
        self.func = func
        self.target = target
        self.lines: list[str] = []
        self.depth = 1
        self.n = 0
        self.env: dict = {}
        self.axis = AxisInfo()
        self.mems: dict[int, tuple[str, str]] = {}  # arg index -> (memref name, memory elem type)
        self.raw: dict[int, str] = {}  # arg index -> its !llvm.ptr
        self.bit_views: dict[int, str] = {}  # arg index -> memref<?xi16> view of an f16/bf16 argument
        self.entry_lines: list[str] = []  # stack buffers, allocated once at function entry
        self.chunk: tuple | None = None  # (tile shape, chunk shape) inside a strip-mined loop
        self.pids: list[str] = []
        self.grid: list[str] = []

    # ----------------------------------------------------------- emission
    def new(self, prefix: str = "v") -> str:
        self.n += 1
        return f"%{prefix}{self.n}"

    def emit(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def op(self, text: str, prefix: str = "v") -> str:
        r = self.new(prefix)
        self.emit(f"{r} = {text}")
        return r

    def results(self, n: int) -> tuple[str, list[str]]:
        """(definition prefix, names) for an op with n results."""
        if n == 0:
            return "", []
        r = self.new("r")
        if n == 1:
            return f"{r} = ", [r]
        return f"{r}:{n} = ", [f"{r}#{i}" for i in range(n)]

    def const(self, value, type_: str) -> str:
        return self.op(f"arith.constant {value} : {type_}", "c")

    def index(self, n: int) -> str:
        return self.const(n, "index")

    def zeros(self, shape, elem: str) -> str:
        if shape is None:
            return self.const(zero_text(elem), elem)
        return self.const(f"dense<{zero_text(elem)}>", vtype(shape, elem))

    def splat(self, name: str, elem: str, shape) -> str:
        return self.op(f"vector.broadcast {name} : {elem} to {vtype(shape, elem)}")

    def shape_cast(self, name: str, src_shape, dst_shape, elem: str) -> str:
        if tuple(src_shape) == tuple(dst_shape):
            return name
        return self.op(f"vector.shape_cast {name} : {vtype(src_shape, elem)} to {vtype(dst_shape, elem)}")

    def extract(self, name: str, pos, shape, elem: str) -> str:
        rest = shape[len(pos):]
        rtype = vtype(rest, elem) if rest else elem
        idx = ", ".join(str(p) for p in pos)
        return self.op(f"vector.extract {name}[{idx}] : {rtype} from {vtype(shape, elem)}")

    def insert(self, part: str, name: str, pos, shape, elem: str) -> str:
        rest = shape[len(pos):]
        ptype = vtype(rest, elem) if rest else elem
        idx = ", ".join(str(p) for p in pos)
        return self.op(f"vector.insert {part}, {name}[{idx}] : {ptype} into {vtype(shape, elem)}")

    # ------------------------------------------------------------- values
    def shape_of(self, t: ir.Type):
        """Static shape of a tile type as lowered: inside a strip-mined loop, the run's shape reads as its chunk."""
        shape = tile.shape_of(t)
        if shape is not None and self.chunk is not None and shape == self.chunk[0]:
            return self.chunk[1]
        return shape

    def ty(self, t: ir.Type, op=None) -> str:
        if isinstance(t, ir.RankedTensorType):
            elem = str(t.element_type)
            if tile.is_ptr(t.element_type):
                raise LoweringError(f"pointer tile type {t} where a value was expected", op)
            return vtype(self.shape_of(t), elem)
        if tile.is_ptr(t):
            raise LoweringError(f"pointer type {t} where a value was expected", op)
        return str(t)

    def val(self, v: ir.Value, op=None) -> Sc:
        x = self.env.get(v)
        if x is None:
            raise LoweringError(f"operand of type {v.type} has no lowered value", op)
        if isinstance(x, Ptr):
            raise LoweringError("a pointer is used where a value was expected", op)
        return x

    def ptr(self, v: ir.Value, op=None) -> Ptr:
        x = self.env.get(v)
        if not isinstance(x, Ptr):
            raise LoweringError(f"expected a pointer operand, got type {v.type}", op)
        return x

    def offset_at(self, p: Ptr, pos) -> str:
        """`index` element offset of the pointer at tile position `pos` (ignored for scalars)."""
        parts = []
        if p.voff is not None:
            e = self.extract(p.voff, pos, p.shape, "i64")
            parts.append(self.op(f"arith.index_cast {e} : i64 to index"))
        if p.soff is not None:
            parts.append(p.soff)
        if not parts:
            return self.index(0)
        if len(parts) == 1:
            return parts[0]
        return self.op(f"arith.addi {parts[0]}, {parts[1]} : index")

    def voff_or_zero(self, p: Ptr) -> str:
        return p.voff if p.voff is not None else self.zeros(p.shape, "i64")

    def memref(self, p: Ptr) -> tuple[str, str]:
        return self.mems[p.base]

    def as_tile(self, x: Sc, shape, elem: str) -> str:
        """x broadcast to `shape` if it is a scalar."""
        if x.type.startswith("vector<"):
            return x.name
        return self.splat(x.name, elem, shape)

    # ------------------------------------------------- flattening for scf
    def flat_types(self, t: ir.Type) -> list[str]:
        if tile.is_ptr(tile.element_type(t)):
            shape = tile.shape_of(t)
            return ["index"] if shape is None else ["index", vtype(shape, "i64")]
        return [self.ty(t)]

    def flatten(self, v: ir.Value) -> list[str]:
        x = self.env[v]
        if isinstance(x, Ptr):
            s = x.soff if x.soff is not None else self.index(0)
            return [s] if x.shape is None else [s, self.voff_or_zero(x)]
        return [x.name]

    def unflatten(self, names: list[str], t: ir.Type, like):
        """Values for `names` of tile-IR type t; `like` is the Ptr giving the base."""
        if tile.is_ptr(tile.element_type(t)):
            shape = tile.shape_of(t)
            return Ptr(like.base, names[0], names[1] if shape else None, shape, like.elem), names[len(self.flat_types(t)):]
        return Sc(names[0], self.ty(t)), names[1:]

    def bind_all(self, values, types, names, likes) -> None:
        for v, t, like in zip(values, types, likes):
            self.env[v], names = self.unflatten(names, t, like)

    def check_same_base(self, a, b, op) -> None:
        if isinstance(a, Ptr) and isinstance(b, Ptr) and a.base != b.base:
            raise LoweringError(
                f"pointer provenance is ambiguous (arguments {a.base} and {b.base} meet in control flow)", op)

    # ------------------------------------------------------------- blocks
    def convert_ops(self, ops) -> None:
        from alloy.passes.stripmine import lower_group, plan_group

        ops = list(ops)
        i = 0
        while i < len(ops):
            group = plan_group(self, ops, i) if self.chunk is None else None
            if group is not None:
                lower_group(self, group)
                i = group.end
                continue
            self._convert_op(ops[i])
            i += 1

    def _convert_op(self, op) -> None:
        name = op.operation.name
        handler = HANDLERS.get(name)
        if handler is None:
            if name.startswith("arith.") or name.startswith("math."):
                handler = _generic
            else:
                raise LoweringError("op not supported by the CPU lowering", op)
        handler(self, op)

    def body(self, block: ir.Block):
        """Convert all but the terminator; return the terminator op."""
        ops = list(block.operations)
        self.convert_ops(ops[:-1])
        return ops[-1]

    # --------------------------------------------------------------- func
    def run(self) -> str:
        """Two functions: the program body (pointer arguments noalias) and the ABI entry looping over it."""
        f = self.func
        name = f.sym_name.value
        params = self.emit_prologue(f)
        self.convert_ops(list(f.regions[0].blocks[0].operations))
        self.emit("return")
        body_head = (f"func.func private @{name}.program({', '.join(params)}) "
                     f"attributes {{llvm.linkage = #llvm.linkage<internal>}} {{")
        body = [body_head] + self.entry_lines + self.lines + ["}"]
        return "\n".join(self.entry(f, name) + body)

    def emit_prologue(self, f) -> list[str]:
        """Bind the kernel arguments to the body's parameters; return the parameter list."""
        params = []
        size = self.op(f"llvm.mlir.constant({_MEM_SIZE} : i64) : i64")
        one = self.op("llvm.mlir.constant(1 : i64) : i64")
        zero = self.op("llvm.mlir.constant(0 : i64) : i64")
        desc = "!llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>"
        for i, arg in enumerate(f.arguments):
            t = arg.type
            if tile.is_ptr(t):
                elem = str(tile.ptr_elem(t))
                mem_elem = "i8" if elem == "i1" else elem
                raw = f"%p{i}"
                params.append(f"{raw}: !llvm.ptr {{llvm.noalias}}")
                d = self.op(f"llvm.mlir.poison : {desc}")
                d = self.op(f"llvm.insertvalue {raw}, {d}[0] : {desc}")
                d = self.op(f"llvm.insertvalue {raw}, {d}[1] : {desc}")
                d = self.op(f"llvm.insertvalue {zero}, {d}[2] : {desc}")
                d = self.op(f"llvm.insertvalue {size}, {d}[3, 0] : {desc}")
                d = self.op(f"llvm.insertvalue {one}, {d}[4, 0] : {desc}")
                m = self.op(f"builtin.unrealized_conversion_cast {d} : {desc} to memref<?x{mem_elem}>", "mem")
                self.mems[i] = (m, mem_elem)
                if elem in ("f16", "bf16"):
                    self.bit_views[i] = self.op(f"builtin.unrealized_conversion_cast {d} : {desc} to memref<?xi16>",
                                                "mem")
                self.raw[i] = raw
                self.env[arg] = Ptr(i, None, None, None, elem)
            else:
                st = str(t)
                if st not in ("i1", "i8", "i16", "i32", "i64", "f16", "bf16", "f32", "f64"):
                    raise LoweringError(f"kernel argument {i} has unsupported type {st}", f)
                params.append(f"%s{i}: {st}")
                self.env[arg] = Sc(f"%s{i}", st)
        self.pids = ["%pid0", "%pid1", "%pid2"]
        self.grid = ["%np0", "%np1", "%np2"]
        params += [f"{n}: i32" for n in self.pids + self.grid]
        return params

    def entry(self, f, name: str) -> list[str]:
        """The C ABI entry: read each argument from its 8-byte slot, run programs [begin, end)."""
        out = [f"func.func @{name}(%args: !llvm.ptr, %begin: i64, %end: i64, %g0: i64, %g1: i64, %g2: i64) {{"]
        vals, types = [], []
        for i, arg in enumerate(f.arguments):
            t = arg.type
            out.append(f"  %slot{i} = llvm.getelementptr %args[{i}] : (!llvm.ptr) -> !llvm.ptr, i64")
            if tile.is_ptr(t):
                out.append(f"  %a{i} = llvm.load %slot{i} : !llvm.ptr -> !llvm.ptr")
                types.append("!llvm.ptr")
            elif str(t) == "i1":
                out.append(f"  %b{i} = llvm.load %slot{i} : !llvm.ptr -> i8")
                out.append(f"  %z{i} = arith.constant 0 : i8")
                out.append(f"  %a{i} = arith.cmpi ne, %b{i}, %z{i} : i8")
                types.append("i1")
            else:
                out.append(f"  %a{i} = llvm.load %slot{i} : !llvm.ptr -> {t}")
                types.append(str(t))
            vals.append(f"%a{i}")
        out += [
            "  %c1 = arith.constant 1 : i64",
            *[f"  %np{i} = arith.trunci %g{i} : i64 to i32" for i in range(3)],
            "  scf.for %lin = %begin to %end step %c1 : i64 {",
            "    %r0 = arith.remui %lin, %g0 : i64",
            "    %q = arith.divui %lin, %g0 : i64",
            "    %r1 = arith.remui %q, %g1 : i64",
            "    %r2 = arith.divui %q, %g1 : i64",
            *[f"    %pid{i} = arith.trunci %r{i} : i64 to i32" for i in range(3)],
            f"    func.call @{name}.program({', '.join(vals + ['%pid0', '%pid1', '%pid2', '%np0', '%np1', '%np2'])}) "
            f": ({', '.join(types + ['i32'] * 6)}) -> ()",
            "  }",
            "  return",
            "}",
        ]
        return out


# ------------------------------------------------------------------ handlers
def _attr_dict(op, extra: dict | None = None) -> str:
    attrs = {k: str(op.attributes[k]) for k in op.attributes}
    if extra:
        attrs.update(extra)
    if not attrs:
        return ""
    return "{" + ", ".join(f"{k} = {v}" for k, v in attrs.items()) + "}"


def _generic(lw: Lowering, op) -> None:
    """Elementwise arith/math op on scalars or tiles: same op on converted types."""
    name = op.operation.name
    if name == "arith.constant":
        return _constant(lw, op)
    if op.operation.regions and len(op.operation.regions):
        raise LoweringError("op with regions not supported by the CPU lowering", op)
    if name.startswith("math."):
        from alloy.passes.vector_math import expand

        if expand(lw, op):
            return
    operands = [lw.val(v, op) for v in op.operands]
    rtypes = [lw.ty(r.type, op) for r in op.results]
    extra = {}
    if name in CONTRACT and "fastmath" in op.attributes and str(op.attributes["fastmath"]) == "#arith.fastmath<none>":
        extra["fastmath"] = "#arith.fastmath<contract>"
    prefix, names = lw.results(len(rtypes))
    lw.emit(f'{prefix}"{name}"({", ".join(o.name for o in operands)}) {_attr_dict(op, extra)} : '
            f'({", ".join(o.type for o in operands)}) -> ({", ".join(rtypes)})')
    for r, n, t in zip(op.results, names, rtypes):
        lw.env[r] = Sc(n, t)


def _constant(lw: Lowering, op) -> None:
    r = op.results[0]
    attr = str(op.attributes["value"])
    t = lw.ty(r.type, op)
    if isinstance(r.type, ir.RankedTensorType):
        attr = attr.rsplit(" : ", 1)[0]
        lw.env[r] = Sc(lw.op(f"arith.constant {attr} : {t}", "c"), t)
    else:
        lw.env[r] = Sc(lw.op(f"arith.constant {attr}", "c"), t)


def _program_id(lw: Lowering, op) -> None:
    axis = ir.IntegerAttr(op.attributes["axis"]).value
    src = lw.pids if op.operation.name == "tile.program_id" else lw.grid
    if axis not in (0, 1, 2):
        raise LoweringError(f"axis {axis} out of range 0..2", op)
    lw.env[op.results[0]] = Sc(src[axis], "i32")


def _arange(lw: Lowering, op) -> None:
    start = ir.IntegerAttr(op.attributes["start"]).value
    end = ir.IntegerAttr(op.attributes["end"]).value
    t = lw.ty(op.results[0].type, op)
    elems = ", ".join(str(i) for i in range(start, end))
    lw.env[op.results[0]] = Sc(lw.op(f"arith.constant dense<[{elems}]> : {t}", "c"), t)


def _splat(lw: Lowering, op) -> None:
    r = op.results[0]
    shape = lw.shape_of(r.type)
    x = lw.env[op.operands[0]]
    if isinstance(x, Ptr):
        lw.env[r] = Ptr(x.base, x.soff, None, shape, x.elem)
        return
    elem = str(tile.element_type(r.type))
    lw.env[r] = Sc(lw.splat(x.name, elem, shape), lw.ty(r.type, op))


def _reshape_like(lw: Lowering, op) -> None:
    """broadcast / expand_dims / reshape / trans on value or pointer tiles."""
    name = op.operation.name
    src_v, r = op.operands[0], op.results[0]
    src_shape, shape = tile.shape_of(src_v.type), tile.shape_of(r.type)
    x = lw.env[src_v]
    if name == "tile.trans" and type(x).__name__ == "DotOperand":  # staged transposed for its dot
        lw.env[r] = x
        return
    if isinstance(x, Ptr):
        if x.voff is None:
            lw.env[r] = Ptr(x.base, x.soff, None, shape, x.elem)
            return
        name_in, elem = x.voff, "i64"
    else:
        name_in, elem = x.name, str(tile.element_type(r.type))
    a, b = vtype(src_shape, elem), vtype(shape, elem)
    if name == "tile.trans":
        out = lw.op(f"vector.transpose {name_in}, [1, 0] : {a} to {b}")
    elif name == "tile.broadcast":
        if len(src_shape) < len(shape):
            src_shape = (1,) * (len(shape) - len(src_shape)) + tuple(src_shape)
            name_in = lw.shape_cast(name_in, tile.shape_of(src_v.type), src_shape, elem)
        out = name_in
        if tuple(src_shape) != tuple(shape):
            out = lw.op(f"vector.broadcast {name_in} : {vtype(src_shape, elem)} to {b}")
    else:
        if math.prod(src_shape) != math.prod(shape):
            raise LoweringError(f"reshape from {src_shape} to {shape} changes the element count", op)
        out = lw.shape_cast(name_in, src_shape, shape, elem)
    if isinstance(x, Ptr):
        lw.env[r] = Ptr(x.base, x.soff, out, shape, x.elem)
    else:
        lw.env[r] = Sc(out, b)


def _addptr(lw: Lowering, op) -> None:
    p = lw.ptr(op.operands[0], op)
    off_v = op.operands[1]
    r = op.results[0]
    shape = lw.shape_of(r.type)
    owner = off_v.owner
    scalar_src = None
    if shape is None:
        scalar_src = off_v
    elif isinstance(owner, ir.OpView) and owner.operation.name == "tile.splat":
        scalar_src = owner.operands[0]
    if scalar_src is not None:
        s = lw.val(scalar_src, op)
        ix = lw.op(f"arith.index_cast {s.name} : {s.type} to index")
        soff = ix if p.soff is None else lw.op(f"arith.addi {p.soff}, {ix} : index")
        lw.env[r] = Ptr(p.base, soff, p.voff, shape, p.elem)
        return
    o = lw.val(off_v, op)
    oelem = str(tile.element_type(off_v.type))
    v = o.name
    if oelem != "i64":
        v = lw.op(f"arith.extsi {v} : {o.type} to {vtype(shape, 'i64')}")
    if p.voff is not None:
        v = lw.op(f"arith.addi {p.voff}, {v} : {vtype(shape, 'i64')}")
    lw.env[r] = Ptr(p.base, p.soff, v, shape, p.elem)


def _return(lw: Lowering, op) -> None:
    if len(op.operands):
        raise LoweringError("a kernel returns nothing", op)


def _lazy(module: str, fn: str):
    def call(lw, op):
        import importlib

        return getattr(importlib.import_module(module), fn)(lw, op)

    return call


HANDLERS = {
    "arith.constant": _constant,
    "tile.program_id": _program_id,
    "tile.num_programs": _program_id,
    "tile.arange": _arange,
    "tile.splat": _splat,
    "tile.broadcast": _reshape_like,
    "tile.expand_dims": _reshape_like,
    "tile.reshape": _reshape_like,
    "tile.trans": _reshape_like,
    "tile.addptr": _addptr,
    "tile.load": _lazy("alloy.passes.tile_memory", "lower_load"),
    "tile.store": _lazy("alloy.passes.tile_memory", "lower_store"),
    "tile.atomic_rmw": _lazy("alloy.passes.tile_memory", "lower_atomic_rmw"),
    "tile.atomic_cas": _lazy("alloy.passes.tile_memory", "lower_atomic_cas"),
    "tile.reduce": _lazy("alloy.passes.tile_reduce", "lower_reduce"),
    "tile.dot": _lazy("alloy.passes.dot_to_fma", "lower_dot"),
    "scf.for": _lazy("alloy.passes.tile_scf", "lower_for"),
    "scf.if": _lazy("alloy.passes.tile_scf", "lower_if"),
    "scf.while": _lazy("alloy.passes.tile_scf", "lower_while"),
    "func.return": _return,
}


def lower_function_text(func, target: VectorTarget) -> str:
    """The lowered entry-point function of one tile kernel, as MLIR text."""
    return Lowering(func, target).run()


def convert_tile_to_vector(op, target: VectorTarget | None = None) -> None:
    """Pass: replace each tile kernel function of the module `op` by its lowered entry point for the CPU
    `target` (default: AVX-512, whose register blocking the lit tests show)."""
    target = target or AVX512
    module_op = op.operation if hasattr(op, "operation") else op
    funcs = tile.kernel_funcs(module_op)
    if not funcs:
        raise LoweringError("no tile kernel function (func.func with tile.kernel) in the module", module_op)
    ctx = module_op.context
    for f in funcs:
        with ctx:
            text = lower_function_text(f, target)
        try:
            new = ir.Module.parse(text, ctx)
        except ir.MLIRError as e:  # a lowering bug: show what was produced
            raise LoweringError(f"lowered IR does not verify: {e}\n{text}", f) from None
        for new_func in list(new.body.operations):
            new_func.operation.move_before(f.operation)
        f.operation.erase()
