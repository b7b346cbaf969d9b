// The llvm-dialect pointer ops of the SIMT form (global data as `!llvm.ptr<1>`) -> MSL pointers.
//
// Each pointer value is a typed MSL pointer (`device float*`): kernel arguments take the pointee
// type their uses agree on; llvm.getelementptr yields a pointer to its element type; loads and
// stores cast when the pointee differs. LLVM atomic orderings (acq_rel, ...) become Metal's
// relaxed order: Metal offers no stronger order on atomics (docs/metal.md).
#include "mlir-c/BuiltinAttributes.h"
#include "msl/emitter.h"

namespace alloy::msl {

static MlirType resultType(MlirOperation op) { return mlirValueGetType(mlirOperationGetResult(op, 0)); }

Ptr Emitter::ptrInfo(MlirValue v, MlirOperation user) {
  auto it = ptrs_.find(v.ptr);
  if (it != ptrs_.end()) return it->second;
  return Ptr{pointerSpace(mlirValueGetType(v), user), "uchar"};  // loop-carried / branch-merged pointers
}

std::string Emitter::ptrAs(MlirValue v, const std::string &elem, bool isConst, MlirOperation user) {
  Ptr p = ptrInfo(v, user);
  std::string n = use(v, user);
  if (p.readOnly && !isConst) fail(user, "write through a pointer derived from a read-only argument");
  if (p.elem == elem) return n;
  return std::string("((") + (isConst ? "const " : "") + addrSpaceKeyword(p.space) + " " + elem + "*)" + n + ")";
}

const std::vector<std::string> &Emitter::aggregate(MlirValue v, MlirOperation user) {
  auto it = aggregates_.find(v.ptr);
  if (it == aggregates_.end()) fail(user, "aggregate value does not come from llvm.cmpxchg");
  return it->second;
}

/// The MSL type a pointer use reads or writes through it (empty when the use says nothing).
static std::string pointeeOfUse(MlirOperation user, intptr_t operandIndex, MlirOperation func) {
  std::string n = opName(user);
  if (n == "llvm.getelementptr" && operandIndex == 0) return mslType(mlirTypeAttrGetValue(getAttr(user, "elem_type")), func);
  if (n == "llvm.load") {
    MlirType t = resultType(user);
    return mslType(elementTypeOf(t), func);
  }
  if (n == "llvm.store" && operandIndex == 1) return mslType(elementTypeOf(mlirValueGetType(mlirOperationGetOperand(user, 0))), func);
  if ((n == "llvm.atomicrmw" || n == "llvm.cmpxchg") && operandIndex == 0)
    return mslType(mlirValueGetType(mlirOperationGetOperand(user, 1)), func);
  return "";
}

std::string inferPointee(MlirValue arg, MlirOperation func) {
  std::string elem;
  for (MlirOpOperand use = mlirValueGetFirstUse(arg); !mlirOpOperandIsNull(use); use = mlirOpOperandGetNextUse(use)) {
    std::string t = pointeeOfUse(mlirOpOperandGetOwner(use), mlirOpOperandGetOperandNumber(use), func);
    if (t.empty()) continue;
    if (!elem.empty() && elem != t) return "uchar";
    elem = t;
  }
  return elem.empty() ? "uchar" : elem;
}

static void gep(Emitter &e, MlirOperation op) {
  MlirAttribute raw = getAttr(op, "rawConstantIndices");
  if (mlirDenseArrayGetNumElements(raw) != 1) fail(op, "only single-index getelementptr (pointer + offset) is supported");
  int32_t c = mlirDenseI32ArrayGetElement(raw, 0);
  std::string idx = c == INT32_MIN ? e.operand(op, 1) : std::to_string(c);
  std::string elem = mslType(mlirTypeAttrGetValue(getAttr(op, "elem_type")), op);
  MlirValue base = mlirOperationGetOperand(op, 0);
  Ptr p = e.ptrInfo(base, op);
  std::string n = e.fresh("p");
  e.line(std::string(p.readOnly ? "const " : "") + addrSpaceKeyword(p.space) + " " + elem + "* " + n + " = " +
         e.ptrAs(base, elem, p.readOnly, op) + " + " + idx + ";");
  e.bindPtr(mlirOperationGetResult(op, 0), n, Ptr{p.space, elem, p.readOnly});
}

/// Vectors read or written with less than their natural alignment go through packed_T<N>.
static std::string accessType(MlirOperation op, MlirType t) {
  std::string ty = mslType(t, op);
  int n = vectorWidth(t);
  if (n == 0) return ty;
  MlirAttribute align = getAttr(op, "alignment");
  int64_t bytes = mlirAttributeIsNull(align) ? 0 : mlirIntegerAttrGetValueInt(align);
  MlirType et = elementTypeOf(t);
  int64_t elemBytes = mlirTypeIsAF32(et)                         ? 4
                      : mlirTypeIsAF16(et) || mlirTypeIsABF16(et) ? 2
                                                                   : (mlirIntegerTypeGetWidth(et) + 7) / 8;
  int64_t natural = elemBytes * (n == 3 ? 4 : n);
  if (ty.rfind("bool", 0) == 0) fail(op, "vectors of i1 cannot be loaded or stored");
  return bytes >= natural ? ty : "packed_" + ty;
}

static void atomicrmw(Emitter &e, MlirOperation op) {
  // LLVM AtomicBinOp -> arith AtomicRMWKind numbering used by emitAtomic.
  static const int64_t kinds[] = {/*xchg*/ 3, /*add*/ 1, /*sub*/ -1, /*and*/ 2, /*nand*/ -1, /*or*/ 14, /*xor*/ 15,
                                  /*max*/ 6,  /*min*/ 10, /*umax*/ 7, /*umin*/ 11, /*fadd*/ 0, /*fsub*/ -1,
                                  /*fmax*/ 5, /*fmin*/ 9};
  int64_t binOp = mlirIntegerAttrGetValueInt(getAttr(op, "bin_op"));
  int64_t kind = binOp >= 0 && binOp < 15 ? kinds[binOp] : -1;
  if (kind < 0) fail(op, "atomic operation " + std::to_string(binOp) + " has no Metal counterpart");
  MlirValue ptr = mlirOperationGetOperand(op, 0);
  std::string elem = mslType(resultType(op), op);
  emitAtomic(e, op, kind, e.ptrInfo(ptr, op).space, e.ptrAs(ptr, elem, false, op), e.operand(op, 1));
}

static void cmpxchg(Emitter &e, MlirOperation op) {
  // LLVM's cmpxchg is strong; Metal has only the weak form: retry while it fails spuriously.
  MlirValue ptr = mlirOperationGetOperand(op, 0);
  MlirType t = mlirValueGetType(mlirOperationGetOperand(op, 1));
  if (!(mlirTypeIsAInteger(t) && mlirIntegerTypeGetWidth(t) == 32))
    fail(op, "Metal compare-exchange needs a 32-bit integer, got '" + typeStr(t) + "'");
  Ptr p = e.ptrInfo(ptr, op);
  std::string as = addrSpaceKeyword(p.space);
  std::string cmp = e.operand(op, 1), val = e.operand(op, 2);
  std::string old = e.fresh("old"), ok = e.fresh("ok");
  e.line("int " + old + ";");
  e.line("bool " + ok + ";");
  e.line("do {");
  e.indent();
  e.line(old + " = " + cmp + ";");
  e.line(ok + " = atomic_compare_exchange_weak_explicit((" + as + " atomic_int*)" + e.ptrAs(ptr, "int", false, op) + ", &" +
         old + ", " + val + ", memory_order_relaxed, memory_order_relaxed);");
  e.dedent();
  e.line("} while (!" + ok + " && " + old + " == " + cmp + ");");
  e.bindAggregate(mlirOperationGetResult(op, 0), {old, ok});
}

/// Inline assembly is PTX (the CUDA SIMT form's math and conversions); the SIMT form lowered for
/// Metal (`simt.target = "metal"`) keeps `math` ops instead, so any inline assembly is rejected.
static void inlineAsm(MlirOperation op) {
  std::string text = toString(mlirStringAttrGetValue(getAttr(op, "asm_string")));
  fail(op, "inline assembly \"" + text + "\" has no Metal translation (lower the kernel with simt.target = \"metal\")");
}

bool emitLLVMOp(Emitter &e, MlirOperation op, const std::string &name) {
  if (name.rfind("llvm.", 0) != 0) return false;
  if (name == "llvm.getelementptr") {
    gep(e, op);
  } else if (name == "llvm.load") {
    MlirType t = resultType(op);
    std::string at = accessType(op, t);
    std::string v = "*" + e.ptrAs(mlirOperationGetOperand(op, 0), at, true, op);
    e.define(op, 0, at == mslType(t, op) ? v : mslType(t, op) + "(" + v + ")");
  } else if (name == "llvm.store") {
    MlirType t = mlirValueGetType(mlirOperationGetOperand(op, 0));
    e.line("*" + e.ptrAs(mlirOperationGetOperand(op, 1), accessType(op, t), false, op) + " = " + e.operand(op, 0) + ";");
  } else if (name == "llvm.ptrtoint") {
    e.define(op, 0, mslType(resultType(op), op) + "((ulong)" + e.operand(op, 0) + ")");
  } else if (name == "llvm.atomicrmw") {
    atomicrmw(e, op);
  } else if (name == "llvm.cmpxchg") {
    cmpxchg(e, op);
  } else if (name == "llvm.extractvalue") {
    MlirAttribute pos = getAttr(op, "position");
    const auto &fields = e.aggregate(mlirOperationGetOperand(op, 0), op);
    int64_t i = mlirDenseArrayGetNumElements(pos) == 1 ? mlirDenseI64ArrayGetElement(pos, 0) : -1;
    if (i < 0 || i >= static_cast<int64_t>(fields.size())) fail(op, "unsupported extractvalue position");
    e.bind(mlirOperationGetResult(op, 0), fields[i]);
  } else if (name == "llvm.frem") {
    e.define(op, 0, "fmod(" + e.operand(op, 0) + ", " + e.operand(op, 1) + ")");
  } else if (name == "llvm.mlir.poison" || name == "llvm.mlir.undef") {
    std::string n = e.declare(resultType(op), op, "u");
    e.bind(mlirOperationGetResult(op, 0), n);
  } else if (name == "llvm.inline_asm") {
    inlineAsm(op);
  } else {
    return false;
  }
  return true;
}

}  // namespace alloy::msl
