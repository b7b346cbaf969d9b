// arith dialect -> MSL expressions.
//
// Integer add/sub/mul/shl on non-index types wrap (MLIR semantics) by computing in the unsigned
// type; index arithmetic is plain signed 32-bit `int` (address arithmetic). Unsigned ops
// (divui, cmpi ult, uitofp, ...) reinterpret their operands as the unsigned type.
#include <cstring>

#include "msl/emitter.h"

namespace alloy::msl {

static MlirType resultType(MlirOperation op) { return mlirValueGetType(mlirOperationGetResult(op, 0)); }
static MlirType operandType(MlirOperation op, intptr_t i) { return mlirValueGetType(mlirOperationGetOperand(op, i)); }

static std::string cast(const std::string &type, const std::string &x) { return type + "(" + x + ")"; }

static std::string constantExpr(MlirOperation op) {
  MlirAttribute v = getAttr(op, "value");
  MlirType t = resultType(op);
  if (!mlirTypeIsAVector(t)) return scalarLiteral(v, t, op);
  if (!mlirAttributeIsADenseElements(v)) fail(op, "vector constant must be dense");
  MlirType et = mlirShapedTypeGetElementType(t);
  std::string ty = mslType(t, op);
  if (mlirDenseElementsAttrIsSplat(v)) return ty + "(" + scalarLiteral(mlirDenseElementsAttrGetSplatValue(v), et, op) + ")";
  std::string s = ty + "(";
  for (int i = 0; i < vectorWidth(t); ++i) {
    if (i) s += ", ";
    s += scalarLiteral(mlirElementsAttrGetValue(v, 1, std::vector<uint64_t>{static_cast<uint64_t>(i)}.data()), et, op);
  }
  return s + ")";
}

static const char *const kBinary[][2] = {
    {"arith.addf", "+"}, {"arith.subf", "-"}, {"arith.mulf", "*"}, {"arith.divf", "/"},
    {"arith.andi", "&"}, {"arith.ori", "|"},  {"arith.xori", "^"}, {"arith.divsi", "/"},
    {"arith.remsi", "%"}, {"arith.shrsi", ">>"},
};
static const char *const kWrapping[][2] = {
    {"arith.addi", "+"}, {"arith.subi", "-"}, {"arith.muli", "*"}, {"arith.shli", "<<"},
};
static const char *const kUnsigned[][2] = {
    {"arith.divui", "/"}, {"arith.remui", "%"}, {"arith.shrui", ">>"},
};

static std::string cmpiExpr(Emitter &e, MlirOperation op) {
  int64_t p = mlirIntegerAttrGetValueInt(getAttr(op, "predicate"));
  static const char *const ops[] = {"==", "!=", "<", "<=", ">", ">=", "<", "<=", ">", ">="};
  if (p < 0 || p > 9) fail(op, "unknown cmpi predicate " + std::to_string(p));
  std::string a = e.operand(op, 0), b = e.operand(op, 1);
  if (p >= 6) {
    std::string ut = mslUnsignedType(operandType(op, 0), op);
    a = cast(ut, a);
    b = cast(ut, b);
  }
  return "(" + a + " " + ops[p] + " " + b + ")";
}

// Predicates in arith's order: false oeq ogt oge olt ole one ord ueq ugt uge ult ule une uno true.
static std::string cmpfExpr(Emitter &e, MlirOperation op) {
  int64_t p = mlirIntegerAttrGetValueInt(getAttr(op, "predicate"));
  std::string a = e.operand(op, 0), b = e.operand(op, 1);
  MlirType rt = resultType(op);
  std::string bt = mslType(rt, op);
  switch (p) {
    case 0: return bt + "(false)";
    case 1: return "(" + a + " == " + b + ")";
    case 2: return "(" + a + " > " + b + ")";
    case 3: return "(" + a + " >= " + b + ")";
    case 4: return "(" + a + " < " + b + ")";
    case 5: return "(" + a + " <= " + b + ")";
    case 6: return "((" + a + " < " + b + ") | (" + a + " > " + b + "))";
    case 7: return "!(isnan(" + a + ") | isnan(" + b + "))";
    case 8: return "!((" + a + " < " + b + ") | (" + a + " > " + b + "))";
    case 9: return "!(" + a + " <= " + b + ")";
    case 10: return "!(" + a + " < " + b + ")";
    case 11: return "!(" + a + " >= " + b + ")";
    case 12: return "!(" + a + " > " + b + ")";
    case 13: return "(" + a + " != " + b + ")";
    case 14: return "(isnan(" + a + ") | isnan(" + b + "))";
    case 15: return bt + "(true)";
    default: fail(op, "unknown cmpf predicate " + std::to_string(p));
  }
}

static std::string selectExpr(Emitter &e, MlirOperation op) {
  std::string c = e.operand(op, 0), t = e.operand(op, 1), f = e.operand(op, 2);
  if (mlirTypeIsAVector(operandType(op, 0))) return "select(" + f + ", " + t + ", " + c + ")";
  return "(" + c + " ? " + t + " : " + f + ")";
}

/// Casts between numeric types (ext/trunc/int<->float/index_cast); `srcUnsigned` reads the source as unsigned.
static std::string convert(Emitter &e, MlirOperation op, bool srcUnsigned) {
  MlirType src = operandType(op, 0), dst = resultType(op);
  std::string x = e.operand(op, 0);
  if (srcUnsigned && !(mlirTypeIsAInteger(elementTypeOf(src)) && mlirIntegerTypeGetWidth(elementTypeOf(src)) == 1))
    x = cast(mslUnsignedType(src, op), x);
  MlirType de = elementTypeOf(dst);
  if (mlirTypeIsAInteger(de) && mlirIntegerTypeGetWidth(de) == 1) return "(" + x + " & 1) != 0";  // trunci to i1
  return cast(mslType(dst, op), x);
}

static std::string minMax(Emitter &e, MlirOperation op, const char *fn, bool isUnsigned, bool nanPropagating) {
  std::string a = e.operand(op, 0), b = e.operand(op, 1);
  MlirType t = resultType(op);
  if (isUnsigned) {
    std::string ut = mslUnsignedType(t, op);
    return cast(mslType(t, op), std::string(fn) + "(" + cast(ut, a) + ", " + cast(ut, b) + ")");
  }
  std::string r = std::string(fn) + "(" + a + ", " + b + ")";
  if (!nanPropagating) return r;
  return "select(" + r + ", " + a + " + " + b + ", isnan(" + a + ") | isnan(" + b + "))";
}

bool emitArithOp(Emitter &e, MlirOperation op, const std::string &name) {
  if (name.rfind("arith.", 0) != 0) return false;
  if (name == "arith.constant") {
    e.define(op, 0, constantExpr(op));
    return true;
  }
  for (auto &b : kBinary)
    if (name == b[0]) {
      e.define(op, 0, "(" + e.operand(op, 0) + " " + b[1] + " " + e.operand(op, 1) + ")");
      return true;
    }
  for (auto &b : kWrapping)
    if (name == b[0]) {
      MlirType t = resultType(op);
      std::string a = e.operand(op, 0), c = e.operand(op, 1);
      MlirType et = elementTypeOf(t);
      bool isBool = mlirTypeIsAInteger(et) && mlirIntegerTypeGetWidth(et) == 1;
      if (isBool && name != "arith.shli") {  // i1 arithmetic is modulo 2: add/sub are xor, mul is and
        e.define(op, 0, "(" + a + (name == "arith.muli" ? " & " : " ^ ") + c + ")");
      } else if (isIndexLike(t)) {
        e.define(op, 0, "(" + a + " " + b[1] + " " + c + ")");
      } else {
        std::string wt = mslWrapType(t);
        e.define(op, 0, cast(mslType(t, op), cast(wt, a) + " " + b[1] + " " + cast(wt, c)));
      }
      return true;
    }
  for (auto &b : kUnsigned)
    if (name == b[0]) {
      MlirType t = resultType(op);
      std::string ut = mslUnsignedType(t, op);
      e.define(op, 0, cast(mslType(t, op), cast(ut, e.operand(op, 0)) + " " + b[1] + " " + cast(ut, e.operand(op, 1))));
      return true;
    }
  if (name == "arith.remf") e.define(op, 0, "fmod(" + e.operand(op, 0) + ", " + e.operand(op, 1) + ")");
  else if (name == "arith.negf") e.define(op, 0, "(-" + e.operand(op, 0) + ")");
  else if (name == "arith.cmpi") e.define(op, 0, cmpiExpr(e, op));
  else if (name == "arith.cmpf") e.define(op, 0, cmpfExpr(e, op));
  else if (name == "arith.select") e.define(op, 0, selectExpr(e, op));
  else if (name == "arith.maxnumf") e.define(op, 0, minMax(e, op, "fmax", false, false));
  else if (name == "arith.minnumf") e.define(op, 0, minMax(e, op, "fmin", false, false));
  else if (name == "arith.maximumf") e.define(op, 0, minMax(e, op, "fmax", false, true));
  else if (name == "arith.minimumf") e.define(op, 0, minMax(e, op, "fmin", false, true));
  else if (name == "arith.maxsi") e.define(op, 0, minMax(e, op, "max", false, false));
  else if (name == "arith.minsi") e.define(op, 0, minMax(e, op, "min", false, false));
  else if (name == "arith.maxui") e.define(op, 0, minMax(e, op, "max", true, false));
  else if (name == "arith.minui") e.define(op, 0, minMax(e, op, "min", true, false));
  else if (name == "arith.extf" || name == "arith.truncf" || name == "arith.sitofp" || name == "arith.fptosi" ||
           name == "arith.trunci" || name == "arith.index_cast")
    e.define(op, 0, convert(e, op, false));
  else if (name == "arith.uitofp" || name == "arith.extui" || name == "arith.index_castui")
    e.define(op, 0, convert(e, op, true));
  else if (name == "arith.extsi") {
    MlirType se = elementTypeOf(operandType(op, 0));
    bool fromBool = mlirTypeIsAInteger(se) && mlirIntegerTypeGetWidth(se) == 1;
    e.define(op, 0, fromBool ? "(-" + cast(mslType(resultType(op), op), e.operand(op, 0)) + ")" : convert(e, op, false));
  } else if (name == "arith.fptoui") {
    MlirType t = resultType(op);
    e.define(op, 0, cast(mslType(t, op), cast(mslUnsignedType(t, op), e.operand(op, 0))));
  } else if (name == "arith.bitcast") {
    e.define(op, 0, "as_type<" + mslType(resultType(op), op) + ">(" + e.operand(op, 0) + ")");
  } else if (name == "arith.ceildivsi" || name == "arith.floordivsi") {
    std::string a = e.operand(op, 0), b = e.operand(op, 1);
    std::string q = "(" + a + " / " + b + ")";
    std::string inexact = "((" + a + " % " + b + ") != 0)";
    std::string sameSign = "((" + a + " < 0) == (" + b + " < 0))";
    std::string adj = name == "arith.ceildivsi" ? "(" + inexact + " && " + sameSign + " ? 1 : 0)"
                                                 : "(" + inexact + " && !" + sameSign + " ? -1 : 0)";
    e.define(op, 0, "(" + q + " + " + adj + ")");
  } else {
    return false;
  }
  return true;
}

}  // namespace alloy::msl
