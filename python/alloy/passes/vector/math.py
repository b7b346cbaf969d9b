"""Inline vector approximations of math.exp / exp2 / log / log2 / tanh / erf on f32 tiles (part of convert-tile-to-vector).

LLVM has no vector exp for the host without a vector math library, so
`llvm.exp` on a vector becomes one libm call per lane. These expansions keep
the work in SIMD registers: Cephes-style range reduction x = n*ln2 + r,
a degree-6 polynomial for e^r and 2^n built in the exponent bits (about
1-2 ulp); tanh uses an odd polynomial for |x| < 0.625 and
1 - 2/(e^{2|x|} + 1) beyond, with the sign restored; erf is a rational
function of x on [-4, 4] (clamped: f32 erf is +-1 beyond); log splits off the
exponent bits and evaluates a polynomial for log1p of the mantissa. NaN propagates,
exp saturates to 0 / +inf outside the f32 range.
"""
from __future__ import annotations

from alloy.passes.vector.lowering import Lowering
from alloy.passes.vector.values import LoweredValue

EXPANDED = ("math.exp", "math.exp2", "math.tanh", "math.erf", "math.log", "math.log2")
_LOG_P = (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
          -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1)
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_TANH_P = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)
# erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (a minimax rational fit; f32 erf is +-1 beyond)
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)
LN2_HI, LN2_LO, LOG2E = 0.693359375, -2.12194440e-4, 1.44269504088896341
EXP_HI, EXP_LO = 88.7228317, -87.3365479


class F32Arithmetic:
    """Tiny emitter of f32 vector arithmetic."""

    def __init__(self, lw: Lowering, vt: str, ivt: str, bvt: str) -> None:
        self.lw, self.vt, self.ivt, self.bvt = lw, vt, ivt, bvt

    def c(self, v: float) -> str:
        special = {float("inf"): "0x7F800000", float("-inf"): "0xFF800000"}
        text = "0x7FC00000" if v != v else special.get(v) or f"{float(v):.9e}"
        return self.lw.const(f"dense<{text}>", self.vt)

    def ci(self, v: int) -> str:
        return self.lw.const(f"dense<{v}>", self.ivt)

    def bin(self, op: str, a: str, b: str) -> str:
        return self.lw.op(f"arith.{op} {a}, {b} : {self.vt}")

    def fma(self, a: str, b: str, c: str) -> str:
        return self.lw.op(f"math.fma {a}, {b}, {c} : {self.vt}")

    def cmp(self, pred: str, a: str, b: str) -> str:
        return self.lw.op(f"arith.cmpf {pred}, {a}, {b} : {self.vt}")

    def sel(self, m: str, a: str, b: str) -> str:
        return self.lw.op(f"arith.select {m}, {a}, {b} : {self.bvt}, {self.vt}")

    def poly(self, x: str, coeffs) -> str:
        p = self.c(coeffs[0])
        for k in coeffs[1:]:
            p = self.fma(p, x, self.c(k))
        return p

    def exp(self, x: str, base2: bool = False) -> str:
        lw = self.lw
        hi, lo = (EXP_HI * LOG2E, EXP_LO * LOG2E) if base2 else (EXP_HI, EXP_LO)
        xc = self.bin("minimumf", self.bin("maximumf", x, self.c(lo)), self.c(hi))
        if base2:  # x = n + f exactly, e^(f ln2)
            n = lw.op(f"math.floor {self.bin('addf', xc, self.c(0.5))} : {self.vt}")
            r = self.bin("mulf", self.bin("subf", xc, n), self.c(0.6931471805599453))
        else:
            n = lw.op(f"math.floor {self.fma(xc, self.c(LOG2E), self.c(0.5))} : {self.vt}")
            r = self.fma(n, self.c(-LN2_HI), xc)
            r = self.fma(n, self.c(-LN2_LO), r)
        p = self.poly(r, _EXP_P)
        r2 = self.bin("mulf", r, r)
        y = self.fma(p, r2, self.bin("addf", r, self.c(1.0)))
        ni = lw.op(f"arith.fptosi {n} : {self.vt} to {self.ivt}")
        bits = lw.op(f"arith.shli {lw.op(f'arith.addi {ni}, {self.ci(127)} : {self.ivt}')}, {self.ci(23)} : {self.ivt}")
        scale = lw.op(f"arith.bitcast {bits} : {self.ivt} to {self.vt}")
        y = self.bin("mulf", y, scale)
        y = self.sel(self.cmp("ogt", x, self.c(hi)), self.c(float("inf")), y)
        return self.sel(self.cmp("olt", x, self.c(lo)), self.c(0.0), y)

    def ci_bits(self, v: int) -> str:
        return self.lw.const(f"dense<{v}>", self.ivt)

    def ibin(self, op: str, a: str, b: str) -> str:
        return self.lw.op(f"arith.{op} {a}, {b} : {self.ivt}")

    def log(self, x: str) -> str:
        """x = m 2^e with m in [sqrt(1/2), sqrt(2)); log(x) = log1p(m - 1) + e ln2."""
        lw = self.lw
        tiny = self.cmp("olt", x, self.c(1.17549435e-38))  # denormals: scale by 2^23 first
        xs = self.sel(tiny, self.bin("mulf", x, self.c(8388608.0)), x)
        bits = lw.op(f"arith.bitcast {xs} : {self.vt} to {self.ivt}")
        e = self.ibin("subi", self.ibin("andi", self.ibin("shrui", bits, self.ci_bits(23)), self.ci_bits(255)),
                      self.ci_bits(126))
        mbits = self.ibin("ori", self.ibin("andi", bits, self.ci_bits(0x807FFFFF)), self.ci_bits(0x3F000000))
        m = lw.op(f"arith.bitcast {mbits} : {self.ivt} to {self.vt}")
        ef = lw.op(f"arith.sitofp {e} : {self.ivt} to {self.vt}")
        ef = self.bin("subf", ef, self.sel(tiny, self.c(23.0), self.c(0.0)))
        small = self.cmp("olt", m, self.c(0.707106781186547524))
        ef = self.bin("subf", ef, self.sel(small, self.c(1.0), self.c(0.0)))
        f = self.bin("subf", self.sel(small, self.bin("addf", m, m), m), self.c(1.0))
        z = self.bin("mulf", f, f)
        y = self.bin("mulf", self.bin("mulf", self.poly(f, _LOG_P), f), z)
        y = self.fma(ef, self.c(LN2_LO), y)
        y = self.fma(z, self.c(-0.5), y)
        r = self.fma(ef, self.c(LN2_HI), self.bin("addf", f, y))
        r = self.sel(self.cmp("oeq", x, self.c(float("inf"))), x, r)
        r = self.sel(self.cmp("oeq", x, self.c(0.0)), self.c(float("-inf")), r)
        return self.sel(self.cmp("ult", x, self.c(0.0)), self.c(float("nan")), r)  # also NaN inputs

    def erf(self, x: str) -> str:
        xc = self.bin("minimumf", self.bin("maximumf", x, self.c(-4.0)), self.c(4.0))
        z = self.bin("mulf", xc, xc)
        p = self.bin("mulf", xc, self.poly(z, _ERF_P))
        return self.bin("divf", p, self.poly(z, _ERF_Q))

    def tanh(self, x: str) -> str:
        ax = self.lw.op(f"math.absf {x} : {self.vt}")
        z = self.bin("mulf", x, x)
        small = self.fma(self.bin("mulf", self.poly(z, _TANH_P), z), x, x)
        e = self.exp(self.bin("addf", ax, ax))
        big = self.bin("subf", self.c(1.0), self.bin("divf", self.c(2.0), self.bin("addf", e, self.c(1.0))))
        big = self.lw.op(f"math.copysign {big}, {x} : {self.vt}")
        return self.sel(self.cmp("olt", ax, self.c(0.625)), small, big)


def expand(lw: Lowering, op) -> bool:
    """Emit the expansion of `op` if it is one of EXPANDED on an f32 tile; False to fall back (libm)."""
    name = op.operation.name
    r = op.results[0]
    t = lw.ty(r.type, op)
    if name not in EXPANDED or not (t.startswith("vector<") and t.endswith("xf32>")):
        return False
    f = F32Arithmetic(lw, t, t[:-4] + "i32>", t[:-4] + "i1>")
    x = lw.val(op.operands[0], op).name
    if name == "math.exp":
        out = f.exp(x)
    elif name == "math.exp2":
        out = f.exp(x, base2=True)
    elif name == "math.erf":
        out = f.erf(x)
    elif name == "math.log":
        out = f.log(x)
    elif name == "math.log2":
        out = f.bin("mulf", f.log(x), f.c(LOG2E))
    else:
        out = f.tanh(x)
    lw.env[r] = LoweredValue(out, t)
    return True
