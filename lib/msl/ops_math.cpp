// math dialect -> Metal math functions.
//
// Transcendental functions on float use `precise::` (IEEE-accurate, as the CPU and CUDA targets
// compute) unless the op carries the `afn` or `fast` fastmath flag, which selects `fast::`.
// `half` has no precise/fast variants: it uses the plain `metal::` overloads.
#include "msl/emitter.h"

namespace alloy::msl {

namespace {
struct MathFn {
  const char *op;
  const char *msl;
  int arity;
  bool transcendental;  // has precise:: / fast:: variants for float
};
const MathFn kMath[] = {
    {"math.exp", "exp", 1, true},       {"math.exp2", "exp2", 1, true},     {"math.log", "log", 1, true},
    {"math.log2", "log2", 1, true},     {"math.log10", "log10", 1, true},   {"math.sqrt", "sqrt", 1, true},
    {"math.rsqrt", "rsqrt", 1, true},   {"math.tanh", "tanh", 1, true},     {"math.sin", "sin", 1, true},
    {"math.cos", "cos", 1, true},       {"math.tan", "tan", 1, true},       {"math.sinh", "sinh", 1, true},
    {"math.cosh", "cosh", 1, true},     {"math.asin", "asin", 1, true},     {"math.acos", "acos", 1, true},
    {"math.atan", "atan", 1, true},     {"math.atan2", "atan2", 2, true},   {"math.powf", "pow", 2, true},
    {"math.floor", "floor", 1, false},  {"math.ceil", "ceil", 1, false},    {"math.trunc", "trunc", 1, false},
    {"math.round", "round", 1, false},  {"math.roundeven", "rint", 1, false}, {"math.absf", "fabs", 1, false},
    {"math.copysign", "copysign", 2, false}, {"math.fma", "fma", 3, false},
};
}  // namespace

static bool wantsFast(MlirOperation op) {
  MlirAttribute fm = getAttr(op, "fastmath");
  if (mlirAttributeIsNull(fm)) return false;
  std::string s = attrStr(fm);  // #arith.fastmath<flag,flag,...>
  size_t open = s.find('<');
  std::string flags = open == std::string::npos ? "" : "," + s.substr(open + 1, s.size() - open - 2) + ",";
  return flags.find(",afn,") != std::string::npos || flags.find(",fast,") != std::string::npos;
}

bool emitMathOp(Emitter &e, MlirOperation op, const std::string &name) {
  if (name.rfind("math.", 0) != 0) return false;
  MlirType t = mlirValueGetType(mlirOperationGetResult(op, 0));
  if (name == "math.absi") {
    e.define(op, 0, "abs(" + e.operand(op, 0) + ")");
    return true;
  }
  for (const MathFn &f : kMath) {
    if (name != f.op) continue;
    if (!isFloatLike(t)) fail(op, "expected a float operand");
    bool isFloat = mlirTypeIsAF32(elementTypeOf(t));
    std::string ns = f.transcendental && isFloat ? (wantsFast(op) ? "fast::" : "precise::") : "metal::";
    std::string call = ns + f.msl + "(";
    for (int i = 0; i < f.arity; ++i) call += (i ? ", " : "") + e.operand(op, i);
    e.define(op, 0, call + ")");
    return true;
  }
  return false;  // e.g. math.erf has no Metal counterpart: reported as unsupported
}

}  // namespace alloy::msl
