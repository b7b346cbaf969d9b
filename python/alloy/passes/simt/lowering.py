"""The SIMT lowering's state and emission helpers (`SimtLowering`): one tile kernel rebuilt as gpu-dialect text.

The kernel becomes `gpu.func @name(...) kernel` inside `gpu.module @alloy`
(the module gets `gpu.container_module`). One program instance is one thread
block of `simt.num_threads` threads (set by simt-layout, chosen here if
missing); `tile.program_id(a)` is `gpu.block_id`, `num_programs` `gpu.grid_dim`.

Parameters keep the tile kernel's order, one each: a `!tile.ptr<T>` becomes a
global `!llvm.ptr<1>` (i1 data lives as bytes), scalars keep their type (so
the PTX entry takes one .u64 per pointer and one .b8/16/32/64 per scalar).

Values (values.py): a scalar stays one SSA value (`Uniform`); a tile of N
elements is distributed in the blocked layout of layout.py (`Distributed`:
each thread holds `regs` scalar SSA values). Elementwise ops apply register by
register; arange is computed from the thread id; expand_dims and reshape are
free; broadcast and trans recompute their source when it is index arithmetic
(arange/splat/constants/elementwise/addptr), a broadcast copies registers when
every thread already holds its source elements (regmap.py), else they exchange
it through workgroup memory between two barriers.

The driver (convert.py) hands the lowering its handler table and the
conversions of the fragment layouts (dot.py, hopper_wgmma.py) back to the
blocked one; the target description (target.py) says what the GPU has.
"""
from __future__ import annotations

import math

from mlir import ir

from alloy.dialects import tile
from alloy.passes.contiguity import AxisInfo
from alloy.passes.emitter import TextEmitter
from alloy.passes.errors import LoweringError
from alloy.passes.simt.layout import Blocked, blocked, choose_num_threads, choose_vec
from alloy.passes.simt.math import MATH
from alloy.passes.simt.target import SimtTarget
from alloy.passes.uniformity import is_simt_kernel
from alloy.passes.simt.values import (DYNAMIC_SHARED, GLOBAL_PTR, WORKGROUP, DeferredTranspose, Distributed,
                                      Uniform, byte_size, mem_elem)


class SimtLowering(TextEmitter):
    """Rebuilds one tile kernel function as gpu-dialect text."""

    def __init__(self, func, target: SimtTarget, handler_for, to_blocked: dict) -> None:
        """`handler_for(op name)` gives an op's handler (or None); `to_blocked[type](lw, value)` converts a
        value held in a fragment layout to the blocked layout."""
        super().__init__(depth=2)
        self.func = func
        self.target = target
        self.handler_for, self.to_blocked = handler_for, to_blocked
        attrs = func.attributes
        self.simt = is_simt_kernel(func)  # a thread-level kernel: scalars are per thread (passes/simt/threads.py)
        self.nt = ir.IntegerAttr(attrs["simt.num_threads"]).value if "simt.num_threads" in attrs \
            else choose_num_threads(func, target)
        self.vec = ir.IntegerAttr(attrs["simt.vec"]).value if "simt.vec" in attrs else choose_vec(func, target)
        self.pro: list[str] = []  # prologue: thread-id arithmetic, valid everywhere
        self.env: dict = {}
        self.wg: dict[str, tuple[str, int]] = {}  # workgroup buffer name -> (memory element type, elements)
        self.dynamic_shared = 0  # bytes of dynamic shared memory (DYNAMIC_SHARED) the kernel needs
        self.cache: dict = {}  # prologue values by key (thread-id arithmetic, shared addresses)
        self.axis = AxisInfo()
        self._consts: dict = {}
        self._remat: dict = {}

    # ----------------------------------------------------------- emission
    def pro_op(self, text: str, prefix: str = "t") -> str:
        r = self.new(prefix)
        self.pro.append(f"    {r} = {text}")
        return r

    def const(self, value, type_: str) -> str:
        """A constant, defined once in the prologue."""
        key = (str(value), type_)
        if key not in self._consts:
            text = f"arith.constant {value}" if type_ == "i1" else f"arith.constant {value} : {type_}"
            self._consts[key] = self.pro_op(text, "c")
        return self._consts[key]

    def i32(self, n: int) -> str:
        return self.const(n, "i32")

    def index(self, n: int) -> str:
        return self.const(n, "index")

    # ------------------------------------------------------------ layouts
    def layout(self, shape) -> Blocked:
        return blocked(shape, self.nt, self.vec)

    def tid(self) -> str:
        if "tid" not in self.cache:
            x = self.pro_op("gpu.thread_id x")
            self.cache["tid_index"] = x
            self.cache["tid"] = self.pro_op(f"arith.index_cast {x} : index to i32")
        return self.cache["tid"]

    def tid_index(self) -> str:
        self.tid()
        return self.cache["tid_index"]

    def tbase(self, lay: Blocked) -> str:
        """(tid % threads) * vec: the flat index of this thread's register 0."""
        key = (lay.threads, lay.vec)
        if key not in self.cache:
            t = self.tid()
            if lay.threads < self.nt:
                t = self.pro_op(f"arith.remui {t}, {self.i32(lay.threads)} : i32")
            if lay.vec > 1:
                t = self.pro_op(f"arith.muli {t}, {self.i32(lay.vec)} : i32")
            self.cache[key] = t
        return self.cache[key]

    def flat(self, lay: Blocked, k: int) -> str:
        """i32 flat index of this thread's register k."""
        key = ("flat", lay.threads, lay.vec, k)
        if key not in self.cache:
            off = lay.offset(k)
            base = self.tbase(lay)
            self.cache[key] = base if off == 0 else self.pro_op(f"arith.addi {base}, {self.i32(off)} : i32")
        return self.cache[key]

    def flats(self, shape) -> list[str]:
        lay = self.layout(shape)
        return [self.flat(lay, k) for k in range(lay.regs)]

    def owner(self, lay: Blocked) -> str | None:
        """i1: this thread owns (is not a replica of) its registers; None when all threads own."""
        if not lay.replicated:
            return None
        key = ("own", lay.threads)
        if key not in self.cache:
            self.cache[key] = self.pro_op(f"arith.cmpi ult, {self.tid()}, {self.i32(lay.threads)} : i32")
        return self.cache[key]

    def unravel(self, idx: str, shape) -> list[str]:
        out = []
        stride = math.prod(shape)
        for n in shape:
            stride //= n
            q = idx if stride == 1 else self.op(f"arith.divui {idx}, {self.i32(stride)} : i32")
            out.append(q if n == math.prod(shape) // stride else self.op(f"arith.remui {q}, {self.i32(n)} : i32"))
        return out

    def ravel(self, coords, shape) -> str:
        acc = None
        stride = math.prod(shape)
        for c, n in zip(coords, shape):
            stride //= n
            if n == 1:
                continue
            term = c if stride == 1 else self.op(f"arith.muli {c}, {self.i32(stride)} : i32")
            acc = term if acc is None else self.op(f"arith.addi {acc}, {term} : i32")
        return acc if acc is not None else self.i32(0)

    # ------------------------------------------------------------- values
    def ty(self, t: ir.Type) -> str:
        e = tile.element_type(t)
        return GLOBAL_PTR if tile.is_ptr(e) else str(e)

    def val(self, v: ir.Value, op=None):
        """The lowered value of v (a tile held in a fragment layout is converted to the blocked layout)."""
        x = self.val_any(v, op)
        if isinstance(x, (Distributed, Uniform)):
            return x
        if isinstance(x, DeferredTranspose):
            raise LoweringError("internal error: a deferred transpose used outside a dot", op)
        return self.to_blocked[type(x)](self, x)

    def val_any(self, v: ir.Value, op=None):
        x = self.env.get(v)
        if x is None:
            raise LoweringError(f"operand of type {v.type} has no lowered value", op)
        return x

    def dist(self, v: ir.Value, op=None) -> Distributed:
        x = self.val(v, op)
        if not isinstance(x, Distributed):
            raise LoweringError(f"expected a tile operand, got {v.type}", op)
        return x

    def regs_of(self, x, shape) -> list[str]:
        """Registers of a tile value, or a uniform scalar repeated over `shape`'s layout."""
        if isinstance(x, Distributed):
            return x.regs
        return [x.name] * self.layout(shape).regs

    def wg_buffer(self, elem: str, n: int, slot: int = 0) -> str:
        """Workgroup buffer number `slot` of `elem` values, grown to n elements; its memref's name."""
        name = f"%wg_{_safe(elem)}_{slot}"
        self.wg[name] = (elem, max(self.wg.get(name, (elem, 0))[1], n))
        return name

    def wg_type(self, buf: str) -> str:
        elem, n = self.wg[buf]
        return f"memref<{n}x{elem}, {WORKGROUP}>"

    def to_mem(self, name: str, elem: str) -> str:
        if elem == "i1":
            return self.op(f"arith.extui {name} : i1 to i8")
        if elem == GLOBAL_PTR:
            return self.op(f"llvm.ptrtoint {name} : {GLOBAL_PTR} to i64")
        return name

    def from_mem(self, name: str, elem: str) -> str:
        if elem == "i1":
            return self.op(f"arith.trunci {name} : i8 to i1")
        if elem == GLOBAL_PTR:
            return self.op(f"llvm.inttoptr {name} : i64 to {GLOBAL_PTR}")
        return name

    def barrier(self) -> None:
        self.emit("gpu.barrier")

    def wg_store(self, buf: str, idx: str, value: str) -> None:
        i = self.op(f"arith.index_cast {idx} : i32 to index")
        self.emit(f"memref.store {value}, {buf}[{i}] : !WG<{buf}>")

    def wg_load(self, buf: str, idx: str) -> str:
        i = self.op(f"arith.index_cast {idx} : i32 to index")
        return self.op(f"memref.load {buf}[{i}] : !WG<{buf}>")

    def exchange(self, src: Distributed, idxs: list[str]) -> list[str]:
        """Values of tile `src` at flat indices `idxs`, through workgroup memory."""
        me = mem_elem(src.elem)
        n = math.prod(src.shape)
        buf = self.wg_buffer(me, n)
        lay = self.layout(src.shape)
        for k, r in enumerate(src.regs):
            self.wg_store(buf, self.flat(lay, k), self.to_mem(r, src.elem))
        self.barrier()
        out = [self.from_mem(self.wg_load(buf, i), src.elem) for i in idxs]
        self.barrier()
        return out

    # ---------------------------------------------------- rematerialising
    def can_remat(self, v: ir.Value) -> bool:
        if not isinstance(v.type, ir.RankedTensorType):
            return v in self.env
        if v in self._remat:
            return self._remat[v]
        ok = False
        if not isinstance(v, ir.BlockArgument) and not isinstance(v.owner, ir.Block):
            op = v.owner
            name = op.operation.name
            if name in ("tile.arange", "tile.splat"):
                ok = True
            elif name == "arith.constant":
                attr = op.attributes["value"]
                ok = isinstance(attr, ir.DenseElementsAttr) and attr.is_splat
            elif name in ("tile.expand_dims", "tile.reshape", "tile.broadcast", "tile.trans", "tile.addptr") or (
                    (name.startswith("arith.") or name.startswith("math.")) and not len(op.regions)):
                ok = all(self.can_remat(o) for o in op.operands)
        self._remat[v] = ok
        return ok

    def remat(self, v: ir.Value, idxs: list[str]) -> list[str]:
        """Values of the index-arithmetic tile `v` at flat indices `idxs`, recomputed in this thread."""
        if not isinstance(v.type, ir.RankedTensorType):
            return [self.env[v].name] * len(idxs)
        op = v.owner
        name = op.operation.name
        shape = tuple(v.type.shape)
        if name == "tile.arange":
            start = ir.IntegerAttr(op.attributes["start"]).value
            return [i if start == 0 else self.op(f"arith.addi {i}, {self.i32(start)} : i32") for i in idxs]
        if name == "tile.splat":
            return [self.env[op.operands[0]].name] * len(idxs)
        if name == "arith.constant":
            c = constant_scalar(self, op)
            return [c] * len(idxs)
        src = op.operands[0] if len(op.operands) else None
        if name in ("tile.expand_dims", "tile.reshape"):
            return self.remat(src, idxs)
        if name == "tile.broadcast":
            return self.remat(src, [self.broadcast_index(i, shape, tuple(src.type.shape)) for i in idxs])
        if name == "tile.trans":
            return self.remat(src, [self.trans_index(i, shape) for i in idxs])
        operands = [self.remat(o, idxs) for o in op.operands]
        if name == "tile.addptr":
            return [gep(self, p, o, str(op.operands[1].type.element_type
                                       if isinstance(op.operands[1].type, ir.RankedTensorType)
                                       else op.operands[1].type), pointee(v.type))
                    for p, o in zip(*operands)]
        return [scalar_op(self, op, list(ops)) for ops in zip(*operands)]

    def broadcast_index(self, idx: str, shape, src_shape) -> str:
        pad = len(shape) - len(src_shape)
        coords = self.unravel(idx, shape)[pad:]
        coords = [self.i32(0) if s == 1 else c for c, s in zip(coords, src_shape)]
        return self.ravel(coords, src_shape)

    def trans_index(self, idx: str, shape) -> str:
        i, j = self.unravel(idx, shape)
        return self.ravel([j, i], (shape[1], shape[0]))

    # ------------------------------------------------------------- blocks
    def convert_ops(self, ops) -> None:
        for op in ops:
            handler = self.handler_for(op.operation.name)
            if handler is None:
                raise LoweringError(f"op not supported by the {self.target.name} lowering", op)
            handler(self, op)

    def body(self, block: ir.Block):
        ops = list(block.operations)
        self.convert_ops(ops[:-1])
        return ops[-1]

    # --------------------------------------------------------------- func
    def run(self) -> str:
        f = self.func
        name = f.sym_name.value
        params = []
        for i, arg in enumerate(f.arguments):
            t = arg.type
            if tile.is_ptr(t):
                params.append(f"%arg{i}: {GLOBAL_PTR}")
                self.env[arg] = Uniform(f"%arg{i}", GLOBAL_PTR)
            else:
                st = str(t)
                if st not in ("i1", "i8", "i16", "i32", "i64", "f16", "bf16", "f32", "f64"):
                    raise LoweringError(f"kernel argument {i} has unsupported type {st}", f)
                params.append(f"%arg{i}: {st}")
                self.env[arg] = Uniform(f"%arg{i}", st)
        self.convert_ops(list(f.regions[0].blocks[0].operations))
        wg = ", ".join(f"{b}: {self.wg_type(b)}" for b in self.wg)
        head = (f"    gpu.func @{name}({', '.join(params)})" + (f" workgroup({wg})" if wg else "")
                + f" kernel attributes {{known_block_size = array<i32: {self.nt}, 1, 1>}} {{")
        body = "\n".join(self.lines)
        for b in self.wg:
            body = body.replace(f"!WG<{b}>", self.wg_type(b))
        dsmem = []
        if self.dynamic_shared:
            dsmem = [f"    llvm.mlir.global external {DYNAMIC_SHARED}() {{addr_space = 3 : i32, alignment = 1024 : i64}} "
                     ": !llvm.array<0 x i8>"]
        return "\n".join(["module attributes {gpu.container_module} {", "  gpu.module @alloy {", head]
                         + self.pro + [body, "      gpu.return", "    }"] + dsmem + ["  }", "}"])

    def shared_bytes(self) -> int:
        return sum(n * byte_size(e) for e, n in self.wg.values())


def _safe(elem: str) -> str:
    return elem.replace("!", "").replace("<", "_").replace(">", "").replace(".", "_")


def pointee(t: ir.Type) -> str:
    e = str(tile.ptr_elem(tile.element_type(t)))
    return mem_elem(e)


def gep(lw: SimtLowering, p: str, off: str, off_type: str, elem: str) -> str:
    if off_type != "i64":
        off = lw.op(f"arith.extsi {off} : {off_type} to i64")
    return lw.op(f"llvm.getelementptr {p}[{off}] : ({GLOBAL_PTR}, i64) -> {GLOBAL_PTR}, {elem}")


def constant_scalar(lw: SimtLowering, op) -> str:
    attr = op.attributes["value"]
    t = op.results[0].type
    if isinstance(t, ir.RankedTensorType):
        if not (isinstance(attr, ir.DenseElementsAttr) and attr.is_splat):
            raise LoweringError(f"non-splat constant tiles are not supported by the {lw.target.name} lowering", op)
        elem = str(t.element_type)
        text = str(attr.get_splat_value())
        return lw.const(text.rsplit(" : ", 1)[0], elem)
    return lw.const(str(attr).rsplit(" : ", 1)[0], str(t))


def scalar_op(lw: SimtLowering, op, operands: list[str]) -> str:
    """One scalar instance of an elementwise arith/math op on `operands`."""
    name = op.operation.name
    types = [lw.ty(o.type) for o in op.operands]
    rtype = lw.ty(op.results[0].type)
    if name in MATH or name == "arith.remf":
        return lw.target.math(lw, name, operands, types[0])
    if name in ("arith.fptosi", "arith.fptoui") and lw.target.fptoi is not None:
        r = lw.target.fptoi(lw, name, operands[0], types[0], rtype)
        if r is not None:
            return r
    attrs = {k: str(op.attributes[k]) for k in op.attributes if k != "simt.layout"}
    attr = ("{" + ", ".join(f"{k} = {v}" for k, v in attrs.items()) + "} ") if attrs else ""
    return lw.op(f'"{name}"({", ".join(operands)}) {attr}: ({", ".join(types)}) -> {rtype}')
