"""The CPU lowering's state and emission helpers (`Lowering`): one tile kernel function rebuilt as MLIR text.

The driver (convert.py) hands it the handler table (op name -> handler) and the
strip-mining planner (stripmine.py); handlers live one concern a file beside it.
"""
from __future__ import annotations

from mlir import ir

from alloy.dialects import tile
from alloy.passes.contiguity import AxisInfo
from alloy.passes.emitter import TextEmitter
from alloy.passes.errors import LoweringError
from alloy.passes.vector.target import VectorTarget
from alloy.passes.vector.values import MEM_SIZE, LoweredPointer, LoweredValue, vtype, zero_text


class Lowering(TextEmitter):
    """Rebuilds one tile kernel function as text."""

    def __init__(self, func, target: VectorTarget, handler_for, plan_group, lower_group) -> None:
        """`handler_for(op name)` gives an op's handler (or None); `plan_group(lw, ops, i)` a strip-mined run
        starting at ops[i] (or None), which `lower_group(lw, group)` lowers."""
        super().__init__(depth=1)
        self.func = func
        self.target = target
        self.handler_for, self.plan_group, self.lower_group = handler_for, plan_group, lower_group
        self.env: dict = {}
        self.axis = AxisInfo()
        self.mems: dict[int, tuple[str, str]] = {}  # arg index -> (memref name, memory elem type)
        self.raw: dict[int, str] = {}  # arg index -> its !llvm.ptr
        self.bit_views: dict[int, str] = {}  # arg index -> memref<?xi16> view of an f16/bf16 argument
        self.entry_lines: list[str] = []  # stack buffers, allocated once at function entry
        self.shared_scratch: dict = {}  # (role, elements, type) -> the stack buffer its users share
        self.chunk: tuple | None = None  # (tile shape, chunk shape) inside a strip-mined loop
        # tile value -> (stack buffer, kind, pointer meta) holding it whole, for strip-mined loops to read
        self.chunk_bufs: dict = {}
        self.pids: list[str] = []
        self.grid: list[str] = []

    # ----------------------------------------------------------- emission
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

    def val(self, v: ir.Value, op=None) -> LoweredValue:
        x = self.env.get(v)
        if x is None:
            raise LoweringError(f"operand of type {v.type} has no lowered value", op)
        if isinstance(x, LoweredPointer):
            raise LoweringError("a pointer is used where a value was expected", op)
        return x

    def ptr(self, v: ir.Value, op=None) -> LoweredPointer:
        x = self.env.get(v)
        if not isinstance(x, LoweredPointer):
            raise LoweringError(f"expected a pointer operand, got type {v.type}", op)
        return x

    def offset_at(self, p: LoweredPointer, pos) -> str:
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

    def voff_or_zero(self, p: LoweredPointer) -> str:
        return p.voff if p.voff is not None else self.zeros(p.shape, "i64")

    def memref(self, p: LoweredPointer) -> tuple[str, str]:
        return self.mems[p.base]

    def as_tile(self, x: LoweredValue, shape, elem: str) -> str:
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
        if isinstance(x, LoweredPointer):
            s = x.soff if x.soff is not None else self.index(0)
            return [s] if x.shape is None else [s, self.voff_or_zero(x)]
        return [x.name]

    def unflatten(self, names: list[str], t: ir.Type, like):
        """Values for `names` of tile-IR type t; `like` is the LoweredPointer giving the base."""
        if tile.is_ptr(tile.element_type(t)):
            shape = tile.shape_of(t)
            return LoweredPointer(like.base, names[0], names[1] if shape else None, shape, like.elem), names[len(self.flat_types(t)):]
        return LoweredValue(names[0], self.ty(t)), names[1:]

    def bind_all(self, values, types, names, likes) -> None:
        for v, t, like in zip(values, types, likes):
            self.env[v], names = self.unflatten(names, t, like)

    def check_same_base(self, a, b, op) -> None:
        if isinstance(a, LoweredPointer) and isinstance(b, LoweredPointer) and a.base != b.base:
            raise LoweringError(
                f"pointer provenance is ambiguous (arguments {a.base} and {b.base} meet in control flow)", op)

    # ------------------------------------------------------------- blocks
    def convert_ops(self, ops) -> None:
        ops = list(ops)
        i = 0
        while i < len(ops):
            group = self.plan_group(self, ops, i) if self.chunk is None else None
            if group is not None:
                self.lower_group(self, group)
                i = group.end
                continue
            self._convert_op(ops[i])
            i += 1

    def _convert_op(self, op) -> None:
        handler = self.handler_for(op.operation.name)
        if handler is None:
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
        for i, arg in enumerate(f.arguments):
            t = arg.type
            if tile.is_ptr(t):
                elem = str(tile.ptr_elem(t))
                raw = f"%p{i}"
                params.append(f"{raw}: !llvm.ptr {{llvm.noalias}}")
                self.bind_buffer(i, raw, elem)
                self.env[arg] = LoweredPointer(i, None, None, None, elem)
            else:
                st = str(t)
                if st not in ("i1", "i8", "i16", "i32", "i64", "f16", "bf16", "f32", "f64"):
                    raise LoweringError(f"kernel argument {i} has unsupported type {st}", f)
                params.append(f"%s{i}: {st}")
                self.env[arg] = LoweredValue(f"%s{i}", st)
        self.pids = ["%pid0", "%pid1", "%pid2"]
        self.grid = ["%np0", "%np1", "%np2"]
        params += [f"{n}: i32" for n in self.pids + self.grid]
        return params

    def bind_buffer(self, base: int, raw: str, elem: str) -> None:
        """View the memory at !llvm.ptr `raw` as buffer number `base` (a memref<?xT>, and its i16 bits for
        16-bit floats)."""
        desc = "!llvm.struct<(ptr, ptr, i64, array<1 x i64>, array<1 x i64>)>"
        mem_elem = "i8" if elem == "i1" else elem
        size = self.op(f"llvm.mlir.constant({MEM_SIZE} : i64) : i64")
        one = self.op("llvm.mlir.constant(1 : i64) : i64")
        zero = self.op("llvm.mlir.constant(0 : i64) : i64")
        d = self.op(f"llvm.mlir.poison : {desc}")
        d = self.op(f"llvm.insertvalue {raw}, {d}[0] : {desc}")
        d = self.op(f"llvm.insertvalue {raw}, {d}[1] : {desc}")
        d = self.op(f"llvm.insertvalue {zero}, {d}[2] : {desc}")
        d = self.op(f"llvm.insertvalue {size}, {d}[3, 0] : {desc}")
        d = self.op(f"llvm.insertvalue {one}, {d}[4, 0] : {desc}")
        self.mems[base] = (self.op(f"builtin.unrealized_conversion_cast {d} : {desc} to memref<?x{mem_elem}>", "mem"),
                           mem_elem)
        if elem in ("f16", "bf16"):
            self.bit_views[base] = self.op(f"builtin.unrealized_conversion_cast {d} : {desc} to memref<?xi16>", "mem")
        self.raw[base] = raw

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
