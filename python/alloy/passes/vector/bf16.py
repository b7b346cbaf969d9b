"""expand-bf16-conversions: bf16 <-> f32 conversions as integer arithmetic on the CPU.

The CPU target computes bf16 in f32 (passes/vector/target.py); what is left of
bf16 are the conversions at loads and stores. LLVM lowers an `fptrunc` to
bfloat on most CPUs to a call of the compiler runtime's `__truncsfbf2`, which a
kernel's shared object cannot count on (and which is one call per lane), so
each conversion becomes integer operations on the bits:

    extf   bf16 -> f32:  bits << 16
    truncf f32 -> bf16:  round to nearest even, (bits + 0x7FFF + bit 16) >> 16;
                         NaN stays NaN (quieted, sign kept)

f64 sources and results go through f32 (truncf f64 -> f32 -> bf16).
"""
from __future__ import annotations

from mlir import ir
from mlir.dialects import arith


def _like(t: ir.Type, elem: ir.Type) -> ir.Type:
    """`t` with its element type replaced (scalars and vectors)."""
    if isinstance(t, ir.VectorType):
        return ir.VectorType.get(list(t.shape), elem)
    return elem


def _elem(t: ir.Type) -> ir.Type:
    return ir.VectorType(t).element_type if isinstance(t, ir.VectorType) else t


def _const(t: ir.Type, value: int):
    elem = _elem(t)
    if isinstance(t, ir.VectorType):
        attr = ir.DenseElementsAttr.get_splat(t, ir.IntegerAttr.get(elem, value))
    else:
        attr = ir.IntegerAttr.get(elem, value)
    return arith.ConstantOp(t, attr).result


def _trunc(x, result_type: ir.Type):
    f32, i32, i16 = ir.F32Type.get(), ir.IntegerType.get_signless(32), ir.IntegerType.get_signless(16)
    if _elem(x.type) != f32:
        x = arith.TruncFOp(_like(x.type, f32), x).result
    t32 = _like(x.type, i32)
    bits = arith.BitcastOp(t32, x).result
    lsb = arith.AndIOp(arith.ShRUIOp(bits, _const(t32, 16)).result, _const(t32, 1)).result
    rounded = arith.AddIOp(arith.AddIOp(bits, _const(t32, 0x7FFF)).result, lsb).result
    nan = arith.CmpFOp(arith.CmpFPredicate.UNO, x, x).result
    quiet = arith.OrIOp(bits, _const(t32, 0x00400000)).result
    picked = arith.SelectOp(nan, quiet, rounded).result
    high = arith.TruncIOp(_like(x.type, i16), arith.ShRUIOp(picked, _const(t32, 16)).result).result
    return arith.BitcastOp(result_type, high).result


def _extend(x, result_type: ir.Type):
    f32, i32, i16 = ir.F32Type.get(), ir.IntegerType.get_signless(32), ir.IntegerType.get_signless(16)
    t32 = _like(x.type, i32)
    bits = arith.ExtUIOp(t32, arith.BitcastOp(_like(x.type, i16), x).result).result
    y = arith.BitcastOp(_like(x.type, f32), arith.ShLIOp(bits, _const(t32, 16)).result).result
    if _elem(result_type) != f32:
        y = arith.ExtFOp(result_type, y).result
    return y


def expand_bf16_conversions(op, target=None) -> None:
    """Pass: rewrite every arith.truncf to bf16 and arith.extf from bf16 in the module `op`."""
    module_op = op.operation if hasattr(op, "operation") else op
    bf16 = ir.BF16Type.get(module_op.context)
    found = []

    def visit(o):
        name = o.name
        if name == "arith.truncf" and _elem(o.results[0].type) == bf16:
            found.append((o, _trunc))
        elif name == "arith.extf" and _elem(o.operands[0].type) == bf16:
            found.append((o, _extend))
        return ir.WalkResult.ADVANCE

    module_op.walk(visit)
    for o, rewrite in found:
        with ir.InsertionPoint(o), o.location:
            new = rewrite(o.operands[0], o.results[0].type)
        o.results[0].replace_all_uses_with(new)
        o.erase()
