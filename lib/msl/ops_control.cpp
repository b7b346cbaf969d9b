// scf dialect -> structured MSL control flow.
//
// Loop-carried values and if-results are variables declared before the construct; scf.yield
// assigns them (as a parallel copy); the construct's results are those variables afterwards.
#include "msl/emitter.h"

namespace alloy::msl {

static MlirBlock onlyBlock(MlirOperation op, intptr_t region) {
  MlirBlock b = mlirRegionGetFirstBlock(mlirOperationGetRegion(op, region));
  if (!mlirBlockIsNull(b) && !mlirBlockIsNull(mlirBlockGetNextInRegion(b)))
    fail(op, "region with several blocks is not supported");
  return b;
}

/// Declares one variable per result of `op`, initialised from operands [first, ...) when given.
static std::vector<std::string> carriedVars(Emitter &e, MlirOperation op, intptr_t firstInit) {
  std::vector<std::string> vars;
  for (intptr_t i = 0; i < mlirOperationGetNumResults(op); ++i) {
    MlirType t = mlirValueGetType(mlirOperationGetResult(op, i));
    if (firstInit < 0) {
      vars.push_back(e.declare(t, op, "r"));
    } else {
      std::string ty = isMmaMatrix(t) ? mslMatrixType(t, op) : mslType(t, op);
      vars.push_back(e.fresh("r"));
      e.line(ty + " " + vars.back() + " = " + e.useAssignable(mlirOperationGetOperand(op, firstInit + i), op) + ";");
    }
    e.bind(mlirOperationGetResult(op, i), vars.back());
  }
  return vars;
}

static void emitFor(Emitter &e, MlirOperation op) {
  // operands: lb, ub, step, inits...
  MlirBlock body = onlyBlock(op, 0);
  std::vector<std::string> vars = carriedVars(e, op, 3);
  MlirValue iv = mlirBlockGetArgument(body, 0);
  MlirType ivType = mlirValueGetType(iv);
  std::string ty = mslType(ivType, op);
  std::string i = e.fresh("i");
  e.bind(iv, i);
  for (size_t k = 0; k < vars.size(); ++k) e.bind(mlirBlockGetArgument(body, static_cast<intptr_t>(k) + 1), vars[k]);
  bool isUnsigned = !mlirAttributeIsNull(getAttr(op, "unsignedCmp"));
  std::string bound = isUnsigned ? mslUnsignedType(ivType, op) + "(" + i + ") < " + mslUnsignedType(ivType, op) + "(" + e.operand(op, 1) + ")"
                                 : i + " < " + e.operand(op, 1);
  e.line("for (" + ty + " " + i + " = " + e.operand(op, 0) + "; " + bound + "; " + i + " += " + e.operand(op, 2) + ") {");
  e.indent();
  e.emitBlock(body, vars);
  e.dedent();
  e.line("}");
}

static void emitIf(Emitter &e, MlirOperation op) {
  std::vector<std::string> vars = carriedVars(e, op, -1);
  e.line("if (" + e.operand(op, 0) + ") {");
  e.indent();
  e.emitBlock(onlyBlock(op, 0), vars);
  e.dedent();
  MlirBlock elseBlock = onlyBlock(op, 1);
  if (!mlirBlockIsNull(elseBlock)) {
    e.line("} else {");
    e.indent();
    e.emitBlock(elseBlock, vars);
    e.dedent();
  }
  e.line("}");
}

static void emitWhile(Emitter &e, MlirOperation op) {
  MlirBlock before = onlyBlock(op, 0), after = onlyBlock(op, 1);
  std::vector<std::string> beforeVars;
  for (intptr_t i = 0; i < mlirBlockGetNumArguments(before); ++i) {
    MlirValue a = mlirBlockGetArgument(before, i);
    MlirType t = mlirValueGetType(a);
    std::string ty = isMmaMatrix(t) ? mslMatrixType(t, op) : mslType(t, op);
    beforeVars.push_back(e.fresh("w"));
    e.line(ty + " " + beforeVars.back() + " = " + e.useAssignable(mlirOperationGetOperand(op, i), op) + ";");
    e.bind(a, beforeVars.back());
  }
  std::vector<std::string> afterVars = carriedVars(e, op, -1);
  for (size_t k = 0; k < afterVars.size(); ++k) e.bind(mlirBlockGetArgument(after, static_cast<intptr_t>(k)), afterVars[k]);
  e.line("while (true) {");
  e.indent();
  MlirOperation cond = mlirBlockGetTerminator(before);
  if (opName(cond) != "scf.condition") fail(op, "expected scf.condition terminating the 'before' region");
  for (MlirOperation o = mlirBlockGetFirstOperation(before); !mlirOperationEqual(o, cond); o = mlirOperationGetNextInBlock(o))
    e.emitOp(o);
  if (!afterVars.empty()) e.assignParallel(cond, 1, afterVars);
  e.line("if (!" + e.operand(cond, 0) + ") break;");
  e.emitBlock(after, beforeVars);
  e.dedent();
  e.line("}");
}

bool emitControlOp(Emitter &e, MlirOperation op, const std::string &name) {
  if (name == "scf.for") emitFor(e, op);
  else if (name == "scf.if") emitIf(e, op);
  else if (name == "scf.while") emitWhile(e, op);
  else return false;
  return true;
}

}  // namespace alloy::msl
