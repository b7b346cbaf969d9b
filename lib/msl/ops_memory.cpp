// memref and vector dialects -> MSL memory accesses, atomics and vector values.
//
// Memrefs are flat arrays indexed row-major (the outermost dim may be dynamic). Atomics use
// Metal's relaxed atomics on `atomic_int` / `atomic_uint` / `atomic_float`; kinds Metal lacks
// (float max/min, mul) become compare-exchange loops on the bits as `atomic_uint`.
#include "mlir-c/BuiltinAttributes.h"
#include "msl/emitter.h"

namespace alloy::msl {

static MlirType resultType(MlirOperation op) { return mlirValueGetType(mlirOperationGetResult(op, 0)); }

static int64_t elementCount(const std::vector<int64_t> &shape, MlirOperation op) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(op, "allocation needs a static shape");
    n *= d;
  }
  return n;
}

/// A threadgroup / thread array for an allocation-like op; kernel-scope (prologue) for threadgroup.
static void allocate(Emitter &e, MlirOperation op, AddrSpace space, const std::string &name) {
  MlirType t = resultType(op);
  MemRef m{name, space, mlirShapedTypeGetElementType(t), memrefShape(t, op)};
  std::string decl = std::string(addrSpaceKeyword(space)) + " " + mslType(m.elementType, op) + " " + name + "[" +
                     std::to_string(elementCount(m.shape, op)) + "];";
  if (space == AddrSpace::Threadgroup) {
    e.prologue(decl);
    e.threadgroupBytes += elementCount(m.shape, op) * byteSize(m.elementType, op);
  }
  else e.line(decl);
  e.bindMemRef(mlirOperationGetResult(op, 0), m);
}

static MlirOperation lookupGlobal(Emitter &e, MlirOperation op, const std::string &sym) {
  MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(e.module, 0));
  for (MlirOperation g = mlirBlockGetFirstOperation(body); !mlirOperationIsNull(g); g = mlirOperationGetNextInBlock(g)) {
    if (opName(g) != "memref.global") continue;
    MlirAttribute n = getAttr(g, "sym_name");
    if (!mlirAttributeIsNull(n) && toString(mlirStringAttrGetValue(n)) == sym) return g;
  }
  fail(op, "memref.global @" + sym + " not found in the enclosing gpu.module");
}

static void getGlobal(Emitter &e, MlirOperation op) {
  std::string sym = toString(mlirFlatSymbolRefAttrGetValue(getAttr(op, "name")));
  MlirOperation g = lookupGlobal(e, op, sym);
  MlirType t = resultType(op);
  if (memorySpaceOf(t, op) != AddrSpace::Threadgroup)
    fail(op, "only workgroup-memory globals are supported by the Metal translator (@" + sym + ")");
  MlirAttribute init = getAttr(g, "initial_value");
  if (!mlirAttributeIsNull(init) && !mlirAttributeIsAUnit(init))
    fail(g, "workgroup memory cannot have an initial value");
  std::string name = "tg_" + sym;
  for (auto &p : e.prologueLines())
    if (p.find(" " + name + "[") != std::string::npos) {
      e.bindMemRef(mlirOperationGetResult(op, 0), MemRef{name, AddrSpace::Threadgroup, mlirShapedTypeGetElementType(t), memrefShape(t, op)});
      return;
    }
  allocate(e, op, AddrSpace::Threadgroup, name);
}

// AtomicRMWKind: addf addi andi assign maximumf maxnumf maxs maxu minimumf minnumf mins minu mulf muli ori xori
void emitAtomic(Emitter &e, MlirOperation op, int64_t kind, AddrSpace space, const std::string &ptr, const std::string &v) {
  MlirType t = resultType(op);
  std::string as = addrSpaceKeyword(space);
  bool f32 = mlirTypeIsAF32(t);
  bool i32 = mlirTypeIsAInteger(t) && mlirIntegerTypeGetWidth(t) == 32;
  if (!f32 && !i32) fail(op, "Metal atomics need a 32-bit element type (int or float), got '" + typeStr(t) + "'");
  const char *mo = "memory_order_relaxed";
  auto direct = [&](const char *fn, const char *atomicType, bool asUnsigned) {
    std::string val = asUnsigned ? "uint(" + v + ")" : v;
    std::string call = std::string(fn) + "((" + as + " " + atomicType + "*)" + ptr + ", " + val + ", " + mo + ")";
    e.define(op, 0, asUnsigned ? "int(" + call + ")" : call);
  };
  const char *intAtomic = "atomic_int";
  switch (kind) {
    case 0: if (f32) return direct("atomic_fetch_add_explicit", "atomic_float", false); break;
    case 1: if (i32) return direct("atomic_fetch_add_explicit", intAtomic, false); break;
    case 2: if (i32) return direct("atomic_fetch_and_explicit", intAtomic, false); break;
    case 3: return direct("atomic_exchange_explicit", f32 ? "atomic_float" : intAtomic, false);
    case 6: if (i32) return direct("atomic_fetch_max_explicit", intAtomic, false); break;
    case 7: if (i32) return direct("atomic_fetch_max_explicit", "atomic_uint", true); break;
    case 10: if (i32) return direct("atomic_fetch_min_explicit", intAtomic, false); break;
    case 11: if (i32) return direct("atomic_fetch_min_explicit", "atomic_uint", true); break;
    case 14: if (i32) return direct("atomic_fetch_or_explicit", intAtomic, false); break;
    case 15: if (i32) return direct("atomic_fetch_xor_explicit", intAtomic, false); break;
    default: break;
  }
  // compare-exchange loop on the bits
  std::string ty = mslType(t, op);
  std::string cur = e.fresh("old"), p = e.fresh("ap");
  std::string old = "as_type<" + ty + ">(" + cur + ")";
  std::string combined;
  switch (kind) {
    case 4: combined = "select(fmax(" + old + ", " + v + "), " + old + " + " + v + ", isnan(" + old + ") | isnan(" + v + "))"; break;
    case 5: combined = "fmax(" + old + ", " + v + ")"; break;
    case 8: combined = "select(fmin(" + old + ", " + v + "), " + old + " + " + v + ", isnan(" + old + ") | isnan(" + v + "))"; break;
    case 9: combined = "fmin(" + old + ", " + v + ")"; break;
    case 12: combined = old + " * " + v; break;
    case 13: combined = "int(uint(" + old + ") * uint(" + v + "))"; break;
    default: fail(op, "atomic kind " + std::to_string(kind) + " does not apply to '" + typeStr(t) + "'");
  }
  if ((kind == 12 || (kind >= 4 && kind <= 9 && kind != 6 && kind != 7)) && !f32) fail(op, "float atomic kind on an integer memref");
  if (kind == 13 && !i32) fail(op, "integer atomic kind on a float memref");
  std::string res = e.declare(t, op, "v");
  e.line("{");
  e.indent();
  e.line(as + " atomic_uint* " + p + " = (" + as + " atomic_uint*)" + ptr + ";");
  e.line("uint " + cur + " = atomic_load_explicit(" + p + ", " + mo + ");");
  e.line("while (!atomic_compare_exchange_weak_explicit(" + p + ", &" + cur + ", as_type<uint>(" + ty + "(" + combined +
         ")), " + mo + ", " + mo + ")) {}");
  e.line(res + " = " + old + ";");
  e.dedent();
  e.line("}");
  e.bind(mlirOperationGetResult(op, 0), res);
}

static void atomicRmw(Emitter &e, MlirOperation op) {
  int64_t kind = mlirIntegerAttrGetValueInt(getAttr(op, "kind"));
  const MemRef &m = e.memref(mlirOperationGetOperand(op, 1), op);
  emitAtomic(e, op, kind, m.space, e.elementPtr(op, m, 2), e.operand(op, 0));
}

bool emitMemoryOp(Emitter &e, MlirOperation op, const std::string &name) {
  if (name.rfind("memref.", 0) != 0) return false;
  if (name == "memref.load") {
    const MemRef &m = e.memref(mlirOperationGetOperand(op, 0), op);
    e.define(op, 0, m.base + "[" + e.linearIndex(op, m, 1) + "]");
  } else if (name == "memref.store") {
    const MemRef &m = e.memref(mlirOperationGetOperand(op, 1), op);
    e.line(m.base + "[" + e.linearIndex(op, m, 2) + "] = " + e.operand(op, 0) + ";");
  } else if (name == "memref.atomic_rmw") {
    atomicRmw(e, op);
  } else if (name == "memref.alloca" || name == "memref.alloc") {
    MlirType t = resultType(op);
    bool unspecified = mlirAttributeIsNull(mlirMemRefTypeGetMemorySpace(t));
    AddrSpace s = unspecified ? AddrSpace::Thread : memorySpaceOf(t, op);
    if (s == AddrSpace::Device) fail(op, "device memory cannot be allocated inside a Metal kernel");
    if (name == "memref.alloc" && s == AddrSpace::Thread) fail(op, "heap allocation inside a kernel is not supported; use memref.alloca");
    allocate(e, op, s, e.fresh(s == AddrSpace::Threadgroup ? "tg" : "local"));
  } else if (name == "memref.get_global") {
    getGlobal(e, op);
  } else if (name == "memref.assume_alignment" || name == "memref.cast") {
    MemRef m = e.memref(mlirOperationGetOperand(op, 0), op);
    memrefShape(resultType(op), op);  // the result must stay row-major with static inner dims
    e.bindMemRef(mlirOperationGetResult(op, 0), m);
  } else if (name == "memref.dim") {
    fail(op, "buffer sizes are not available to Metal kernels; pass the size as a scalar kernel argument");
  } else {
    return false;
  }
  return true;
}

// ---------------------------------------------------------------- vector

static std::string packedPtr(Emitter &e, MlirOperation op, MlirType vt, const MemRef &m, intptr_t first, bool isConst) {
  std::string vty = mslType(vt, op);
  if (vty.rfind("bool", 0) == 0) fail(op, "vectors of i1 cannot be loaded or stored");
  return std::string("(") + (isConst ? "const " : "") + addrSpaceKeyword(m.space) + " packed_" + vty + "*)" +
         e.elementPtr(op, m, first);
}

static int64_t staticPosition(MlirOperation op) {
  MlirAttribute pos = getAttr(op, "static_position");
  if (mlirAttributeIsNull(pos) || mlirDenseArrayGetNumElements(pos) != 1)
    fail(op, "expected a single position into a 1-D vector");
  return mlirDenseI64ArrayGetElement(pos, 0);
}

static std::string positionExpr(Emitter &e, MlirOperation op, intptr_t dynamicOperand) {
  int64_t p = staticPosition(op);
  if (p == INT64_MIN) return e.operand(op, dynamicOperand);
  return std::to_string(p);
}

static std::string reductionExpr(Emitter &e, MlirOperation op) {
  std::string kind = attrStr(getAttr(op, "kind"));
  MlirType vt = mlirValueGetType(mlirOperationGetOperand(op, 0));
  std::string v = e.operand(op, 0);
  auto lane = [&](int i) { return v + "[" + std::to_string(i) + "]"; };
  std::string acc = mlirOperationGetNumOperands(op) > 1 ? e.operand(op, 1) : "";
  std::string r;
  const char *infix = nullptr, *fn = nullptr;
  if (kind == "#vector.kind<add>") infix = " + ";
  else if (kind == "#vector.kind<mul>") infix = " * ";
  else if (kind == "#vector.kind<and>") infix = " & ";
  else if (kind == "#vector.kind<or>") infix = " | ";
  else if (kind == "#vector.kind<xor>") infix = " ^ ";
  else if (kind == "#vector.kind<maxnumf>") fn = "fmax";
  else if (kind == "#vector.kind<minnumf>") fn = "fmin";
  else if (kind == "#vector.kind<maxsi>") fn = "max";
  else if (kind == "#vector.kind<minsi>") fn = "min";
  else fail(op, "reduction kind " + kind + " is not supported by the Metal translator");
  r = acc.empty() ? lane(0) : acc;
  for (int i = acc.empty() ? 1 : 0; i < vectorWidth(vt); ++i)
    r = infix ? "(" + r + infix + lane(i) + ")" : std::string(fn) + "(" + r + ", " + lane(i) + ")";
  return r;
}

bool emitVectorOp(Emitter &e, MlirOperation op, const std::string &name) {
  if (name.rfind("vector.", 0) != 0) return false;
  if (name == "vector.load") {
    MlirType vt = resultType(op);
    const MemRef &m = e.memref(mlirOperationGetOperand(op, 0), op);
    e.define(op, 0, mslType(vt, op) + "(*" + packedPtr(e, op, vt, m, 1, true) + ")");
  } else if (name == "vector.store") {
    MlirType vt = mlirValueGetType(mlirOperationGetOperand(op, 0));
    const MemRef &m = e.memref(mlirOperationGetOperand(op, 1), op);
    e.line("*" + packedPtr(e, op, vt, m, 2, false) + " = " + e.operand(op, 0) + ";");
  } else if (name == "vector.broadcast" || name == "vector.splat") {
    MlirType src = mlirValueGetType(mlirOperationGetOperand(op, 0));
    if (mlirTypeIsAVector(src)) {
      if (!mlirTypeEqual(src, resultType(op))) fail(op, "only scalar-to-vector broadcasts are supported");
      e.bind(mlirOperationGetResult(op, 0), e.operand(op, 0));
    } else {
      e.define(op, 0, mslType(resultType(op), op) + "(" + e.operand(op, 0) + ")");
    }
  } else if (name == "vector.extract") {
    if (mlirTypeIsAVector(resultType(op))) fail(op, "only scalar extraction from 1-D vectors is supported");
    e.define(op, 0, e.operand(op, 0) + "[" + positionExpr(e, op, 1) + "]");
  } else if (name == "vector.insert") {
    std::string r = e.define(op, 0, e.operand(op, 1));
    e.line(r + "[" + positionExpr(e, op, 2) + "] = " + e.operand(op, 0) + ";");
  } else if (name == "vector.from_elements") {
    std::string s = mslType(resultType(op), op) + "(";
    for (intptr_t i = 0; i < mlirOperationGetNumOperands(op); ++i) s += (i ? ", " : "") + e.operand(op, i);
    e.define(op, 0, s + ")");
  } else if (name == "vector.fma") {
    e.define(op, 0, "fma(" + e.operand(op, 0) + ", " + e.operand(op, 1) + ", " + e.operand(op, 2) + ")");
  } else if (name == "vector.reduction") {
    e.define(op, 0, reductionExpr(e, op));
  } else if (name == "vector.bitcast") {
    e.define(op, 0, "as_type<" + mslType(resultType(op), op) + ">(" + e.operand(op, 0) + ")");
  } else {
    return false;
  }
  return true;
}

}  // namespace alloy::msl
