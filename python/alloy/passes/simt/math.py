"""Math functions of the SIMT lowering: PTX formulas for CUDA (`ptx_math`), `math` ops for Metal (`msl_math`).

Each target's SimtTarget (target.py) names its function. Metal: the upstream `math` ops stay, and the MSL
translator emits Metal's functions for them (`precise::exp`, `precise::tanh`,
`precise::pow`, ...); `arith.remf` stays (`fmod`). Metal has no erf: it becomes
the Abramowitz-Stegun formula below over `math.exp`. f16 and bf16 are widened
to f32 and narrowed back, as on CUDA, so half-precision results are f32
functions rounded once; f64 is an error (Metal has no double).

CUDA:

convert-gpu-to-nvvm turns `math` ops into libdevice calls, which need the
CUDA toolkit's libdevice.10.bc at link time. Instead, each function becomes
PTX instructions (inline asm) or a short formula over them, computed in f32
(f16/bf16 are widened and narrowed back; f64 gets only sqrt/abs/floor/ceil/fma):

    exp(x) = ex2.approx(x * log2 e)      log(x) = lg2.approx(x) * ln 2
    sin/cos: sin.approx / cos.approx     sqrt: sqrt.rn, rsqrt: 1 / sqrt.rn
    tanh(x) = 1 - 2 / (exp(2x) + 1)      erf: Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7)
    floor/ceil: cvt.rmi / cvt.rpi        pow(a, b) = exp2(b * log2 a)
    fmod (arith.remf): a - trunc(a / b) * b

The approximate instructions are accurate to about 2 ulp (sin/cos: 5e-7
absolute in [-100 pi, 100 pi]).
"""
from __future__ import annotations

from alloy.passes.errors import LoweringError

LOG2E = 1.4426950408889634
LN2 = 0.6931471805599453

MATH = frozenset({"math.exp", "math.exp2", "math.log", "math.log2", "math.sqrt", "math.rsqrt", "math.sin",
                  "math.cos", "math.tanh", "math.erf", "math.floor", "math.ceil", "math.powf", "math.fma",
                  "math.absf"})
_F64_OK = {"math.sqrt", "math.floor", "math.ceil", "math.fma", "math.absf", "arith.remf"}


def _asm(lw, text: str, args: list[str], t: str = "f32") -> str:
    reg = {"f32": "f", "f64": "d"}[t]
    cons = ",".join(["=" + reg] + [reg] * len(args))
    return lw.op(f'llvm.inline_asm "{text}", "{cons}" {", ".join(args)} : ({", ".join([t] * len(args))}) -> {t}')


def _c(lw, v: float, t: str = "f32") -> str:
    return lw.const(f"{float(v):.9e}", t)


def _bin(lw, name: str, a: str, b: str, t: str = "f32") -> str:
    return lw.op(f"arith.{name} {a}, {b} : {t}")


def _exp2(lw, x: str) -> str:
    return _asm(lw, "ex2.approx.ftz.f32 $0, $1;", [x])


def _exp(lw, x: str) -> str:
    return _exp2(lw, _bin(lw, "mulf", x, _c(lw, LOG2E)))


def _erf(lw, x: str, exp=None) -> str:
    a = [0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429]
    ax = lw.op(f"math.absf {x} : f32")
    t = _bin(lw, "divf", _c(lw, 1.0), _bin(lw, "addf", _c(lw, 1.0), _bin(lw, "mulf", ax, _c(lw, 0.3275911))))
    poly = _c(lw, a[4])
    for coef in reversed(a[:4]):
        poly = _bin(lw, "addf", _bin(lw, "mulf", poly, t), _c(lw, coef))
    poly = _bin(lw, "mulf", poly, t)
    e = (exp or _exp)(lw, lw.op(f"arith.negf {_bin(lw, 'mulf', ax, ax)} : f32"))
    y = _bin(lw, "subf", _c(lw, 1.0), _bin(lw, "mulf", poly, e))
    neg = lw.op(f"arith.cmpf olt, {x}, {_c(lw, 0.0)} : f32")
    return lw.op(f"arith.select {neg}, {lw.op(f'arith.negf {y} : f32')}, {y} : f32")


def _f32(lw, name: str, a: list[str]) -> str:
    if name == "math.exp":
        return _exp(lw, a[0])
    if name == "math.exp2":
        return _exp2(lw, a[0])
    if name == "math.log":
        return _bin(lw, "mulf", _asm(lw, "lg2.approx.ftz.f32 $0, $1;", a), _c(lw, LN2))
    if name == "math.log2":
        return _asm(lw, "lg2.approx.ftz.f32 $0, $1;", a)
    if name == "math.sin":
        return _asm(lw, "sin.approx.f32 $0, $1;", a)
    if name == "math.cos":
        return _asm(lw, "cos.approx.f32 $0, $1;", a)
    if name == "math.tanh":
        e = _exp(lw, _bin(lw, "addf", a[0], a[0]))
        return _bin(lw, "subf", _c(lw, 1.0), _bin(lw, "divf", _c(lw, 2.0), _bin(lw, "addf", e, _c(lw, 1.0))))
    if name == "math.erf":
        return _erf(lw, a[0])
    if name == "math.powf":
        lg = _asm(lw, "lg2.approx.ftz.f32 $0, $1;", [a[0]])
        return _exp2(lw, _bin(lw, "mulf", a[1], lg))
    return _any(lw, name, a, "f32")


def _any(lw, name: str, a: list[str], t: str) -> str:
    sfx = "f32" if t == "f32" else "f64"
    if name == "math.sqrt":
        return _asm(lw, f"sqrt.rn.{sfx} $0, $1;", a, t)
    if name == "math.rsqrt":
        return _bin(lw, "divf", _c(lw, 1.0, t), _asm(lw, f"sqrt.rn.{sfx} $0, $1;", a, t), t)
    if name == "math.floor":
        return _asm(lw, f"cvt.rmi.{sfx}.{sfx} $0, $1;", a, t)
    if name == "math.ceil":
        return _asm(lw, f"cvt.rpi.{sfx}.{sfx} $0, $1;", a, t)
    if name == "math.fma":
        return _asm(lw, f"fma.rn.{sfx} $0, $1, $2, $3;", a, t)
    if name == "math.absf":
        return lw.op(f"math.absf {a[0]} : {t}")
    if name == "arith.remf":  # C fmod: a - trunc(a / b) * b, the last step fused
        q = _asm(lw, f"cvt.rzi.{sfx}.{sfx} $0, $1;", [_bin(lw, "divf", a[0], a[1], t)], t)
        return _asm(lw, f"fma.rn.{sfx} $0, $1, $2, $3;", [lw.op(f"arith.negf {q} : {t}"), a[1], a[0]], t)
    raise LoweringError(f"{name} on {t} is not supported by the CUDA target")


def ptx_fptoi(lw, name: str, x: str, src: str, dst: str) -> str | None:
    """fptosi/fptoui to i32/i64 as PTX cvt.rzi, which saturates (NaN -> 0) where LLVM's
    conversion is poison out of range; None for other widths (the generic conversion)."""
    if dst not in ("i32", "i64"):
        return None
    if src in ("f16", "bf16"):
        x, src = lw.op(f"arith.extf {x} : {src} to f32"), "f32"
    sign = "s" if name == "arith.fptosi" else "u"
    reg = {"f32": "f", "f64": "d"}[src]
    out = {"i32": "r", "i64": "l"}[dst]
    return lw.op(f'llvm.inline_asm "cvt.rzi.{sign}{dst[1:]}.{src} $0, $1;", "={out},{reg}" {x} : ({src}) -> {dst}')


def ptx_math(lw, name: str, operands: list[str], elem: str) -> str:
    """One scalar `name`(operands) of float type `elem`, in PTX instructions."""
    if elem == "f64":
        if name not in _F64_OK:
            raise LoweringError(f"{name} on f64 is not supported by the CUDA target (no libdevice)")
        return _any(lw, name, operands, "f64")
    if elem == "f32":
        return _f32(lw, name, operands)
    if elem in ("f16", "bf16"):
        if name == "math.absf":
            return lw.op(f"math.absf {operands[0]} : {elem}")
        wide = [lw.op(f"arith.extf {x} : {elem} to f32") for x in operands]
        return lw.op(f"arith.truncf {_f32(lw, name, wide)} : f32 to {elem}")
    raise LoweringError(f"{name} on {elem} is not supported by the CUDA target")


def _metal_exp(lw, x: str) -> str:
    return lw.op(f"math.exp {x} : f32")


def msl_math(lw, name: str, a: list[str], elem: str) -> str:
    """One scalar `name`(a) of float type `elem`, as the `math` op the MSL translator maps to Metal's function."""
    if elem in ("f16", "bf16") and name != "math.absf":
        wide = [lw.op(f"arith.extf {x} : {elem} to f32") for x in a]
        return lw.op(f"arith.truncf {msl_math(lw, name, wide, 'f32')} : f32 to {elem}")
    if elem not in ("f32", "f16", "bf16"):
        raise LoweringError(f"{name} on {elem} is not supported by the Metal target (Metal has no double)")
    if name == "math.erf":
        return _erf(lw, a[0], _metal_exp)
    return lw.op(f"{name} {', '.join(a)} : {elem}")
