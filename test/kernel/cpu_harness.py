"""Helpers for the CPU lowering tests: build tile-IR kernels with the dialect's
Python helpers, compile them with the CPU target, dlopen and launch them
through the entry ABI of docs/cpu-abi.md."""
from __future__ import annotations

import ctypes
import os
import tempfile

import numpy as np
from mlir import ir
from mlir.dialects import arith, func

from alloy.dialects import tile

_KEEP: list = []  # loaded libraries stay alive for the session


def T(s: str) -> ir.Type:
    return ir.Type.parse(s)


def build(name: str, arg_types: list[str], body) -> ir.Module:
    """A module with one tile.kernel func; body(*args) emits its ops."""
    ctx = tile.new_context()
    with ctx, ir.Location.unknown():
        m = ir.Module.create()
        with ir.InsertionPoint(m.body):
            f = func.FuncOp(name, ([T(a) for a in arg_types], []))
            f.attributes["tile.kernel"] = ir.UnitAttr.get()
            with ir.InsertionPoint(f.add_entry_block()):
                body(*f.arguments)
                func.ReturnOp([])
    assert m.operation.verify()
    return m


def const(v, t: str) -> ir.Value:
    return arith.constant(T(t), v)


def full(v, shape, t: str) -> ir.Value:
    return tile.splat(const(v, t), shape)


def offsets(pid_axis: int, block: int) -> ir.Value:
    """pid * block + arange(block) as i32."""
    pid = tile.program_id(pid_axis)
    base = arith.muli(pid, const(block, "i32"))
    return arith.addi(tile.splat(base, [block]), tile.arange(0, block))


def lt(a, b):
    return arith.cmpi(arith.CmpIPredicate.slt, a, b)


def ptrs(base, offs):
    """base + offs for a scalar pointer base and an offset tile."""
    return tile.addptr(tile.splat(base, tile.shape_of(offs.type)), offs)


def col(x):  # x[:, None]
    return tile.expand_dims(x, 1)


def row(x):  # x[None, :]
    return tile.expand_dims(x, 0)


def bcast(x, shape):
    return tile.broadcast(x, shape) if tuple(tile.shape_of(x.type)) != tuple(shape) else x


def compile_so(module: ir.Module):
    from alloy.targets.cpu import compile_tile_module

    art = compile_tile_module(module)
    with tempfile.TemporaryDirectory(prefix="alloy-test-") as d:
        path = os.path.join(d, art.entry + ".so")
        with open(path, "wb") as f:
            f.write(art.shared_object)
        lib = ctypes.CDLL(path)  # stays mapped after the file is gone
    _KEEP.append(lib)
    fn = getattr(lib, art.entry)
    fn.argtypes = [ctypes.c_void_p] + [ctypes.c_int64] * 5
    fn.restype = None
    return fn


def pack(a) -> int:
    if isinstance(a, np.ndarray):
        return a.ctypes.data
    if isinstance(a, (bool, np.bool_)):
        return int(a)
    if isinstance(a, (int, np.integer)):
        return int(a)
    if isinstance(a, np.floating):
        bits = {2: np.int16, 4: np.int32, 8: np.int64}[a.dtype.itemsize]
        return int(np.array(a).view(bits))
    raise TypeError(type(a))


def launch(fn, args, grid) -> None:
    g = list(grid) + [1] * (3 - len(grid))
    slots = np.array([pack(a) for a in args], np.int64)
    fn(slots.ctypes.data, 0, g[0] * g[1] * g[2], g[0], g[1], g[2])


def run(module: ir.Module, args, grid) -> None:
    launch(compile_so(module), args, grid)
