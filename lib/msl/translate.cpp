// Module and kernel structure: gpu.module -> MSL translation unit, gpu.func kernel -> `kernel void`.
//
// Kernel ABI (what a Metal host must bind): the gpu.func arguments in order, argument i at
// [[buffer(i)]]; memrefs as `device T*`, scalars as `constant T&` (index is 32-bit `int`).
// Workgroup attributions become `threadgroup` arrays, private ones `thread` arrays.
#include <cctype>

#include "msl/emitter.h"

namespace alloy::msl {

// ---------------------------------------------------------------- Emitter basics

std::string Emitter::fresh(const char *prefix) { return prefix + std::to_string(counter_++); }

void Emitter::bind(MlirValue v, const std::string &name) { names_[v.ptr] = name; }

std::string Emitter::use(MlirValue v, MlirOperation user) {
  auto it = names_.find(v.ptr);
  if (it == names_.end()) fail(user, "operand has no MSL value (defined by an op the translator skipped)");
  return it->second;
}

std::string Emitter::define(MlirOperation op, intptr_t i, const std::string &expr) {
  MlirValue r = mlirOperationGetResult(op, i);
  MlirType t = mlirValueGetType(r);
  std::string ty = isMmaMatrix(t) ? mslMatrixType(t, op) : mslType(t, op);
  std::string n = fresh("v");
  line(ty + " " + n + " = " + expr + ";");
  bind(r, n);
  return n;
}

std::string Emitter::declare(MlirType t, MlirOperation op, const char *prefix) {
  std::string ty = isMmaMatrix(t) ? mslMatrixType(t, op) : mslType(t, op);
  std::string n = fresh(prefix);
  line(ty + " " + n + ";");
  return n;
}

std::string Emitter::useAssignable(MlirValue v, MlirOperation user) {
  std::string n = use(v, user);
  MlirType t = mlirValueGetType(v);
  if (!isLLVMPointer(t)) return n;
  return "(" + mslType(t, user) + ")(" + n + ")";
}

const MemRef &Emitter::memref(MlirValue v, MlirOperation user) {
  auto it = memrefs_.find(v.ptr);
  if (it == memrefs_.end()) fail(user, "memref operand does not come from a kernel argument, attribution or allocation");
  return it->second;
}

std::string Emitter::linearIndex(MlirOperation op, const MemRef &m, intptr_t first) {
  std::string expr;
  int64_t stride = 1;
  for (intptr_t d = static_cast<intptr_t>(m.shape.size()) - 1; d >= 0; --d) {
    std::string idx = operand(op, first + d);
    std::string term = stride == 1 ? idx : idx + " * " + std::to_string(stride);
    expr = expr.empty() ? term : term + " + " + expr;
    if (d > 0) stride *= m.shape[d];
  }
  return expr.empty() ? "0" : expr;
}

std::string Emitter::elementPtr(MlirOperation op, const MemRef &m, intptr_t first) {
  return "(" + m.base + " + " + linearIndex(op, m, first) + ")";
}

std::string Emitter::builtin(const std::string &attribute, const char *type) {
  std::string var = "alloy_" + attribute;
  for (auto &p : builtinParams_)
    if (p.second == var) return var;
  builtinParams_.emplace_back(std::string(type) + " " + var + " [[" + attribute + "]]", var);
  return var;
}

void Emitter::line(const std::string &s) { out_ << std::string(2 * depth_, ' ') << s << "\n"; }

void Emitter::assignParallel(MlirOperation term, intptr_t first, const std::vector<std::string> &targets) {
  intptr_t n = mlirOperationGetNumOperands(term) - first;
  if (n != static_cast<intptr_t>(targets.size())) fail(term, "terminator yields a different number of values than its parent expects");
  if (n == 1) {
    line(targets[0] + " = " + useAssignable(mlirOperationGetOperand(term, first), term) + ";");
    return;
  }
  std::vector<std::string> temps;
  for (intptr_t i = 0; i < n; ++i) {
    MlirType t = mlirValueGetType(mlirOperationGetOperand(term, first + i));
    std::string ty = isMmaMatrix(t) ? mslMatrixType(t, term) : mslType(t, term);
    temps.push_back(fresh("t"));
    line(ty + " " + temps.back() + " = " + useAssignable(mlirOperationGetOperand(term, first + i), term) + ";");
  }
  for (intptr_t i = 0; i < n; ++i) line(targets[i] + " = " + temps[i] + ";");
}

void Emitter::emitBlock(MlirBlock block, const std::vector<std::string> &yieldTargets) {
  for (MlirOperation op = mlirBlockGetFirstOperation(block); !mlirOperationIsNull(op); op = mlirOperationGetNextInBlock(op)) {
    std::string name = opName(op);
    if (name == "scf.yield") {
      if (mlirOperationGetNumOperands(op) > 0) assignParallel(op, 0, yieldTargets);
    } else if (name == "gpu.return") {
      if (mlirOperationGetNumOperands(op) > 0) fail(op, "kernels return no values");
      bool last = mlirOperationIsNull(mlirOperationGetNextInBlock(op)) &&
                  opName(mlirBlockGetParentOperation(block)) == "gpu.func";
      if (!last) line("return;");
    } else {
      emitOp(op);
    }
  }
}

void Emitter::emitOp(MlirOperation op) {
  std::string name = opName(op);
  if (emitArithOp(*this, op, name) || emitMathOp(*this, op, name) || emitMemoryOp(*this, op, name) ||
      emitVectorOp(*this, op, name) || emitControlOp(*this, op, name) || emitGpuOp(*this, op, name) ||
      emitLLVMOp(*this, op, name))
    return;
  fail(op, "op is not supported by the Metal translator");
}

// ---------------------------------------------------------------- kernels

static bool isIdentifier(const std::string &s) {
  // Names MSL reserves or that the generated code itself uses.
  static const std::set<std::string> reserved = {
      "main", "kernel", "vertex", "fragment", "device", "constant", "threadgroup", "thread", "metal",
      "half", "float", "int", "uint", "bool", "char", "short", "long", "void", "auto", "for", "if",
      "while", "do", "return", "break", "select", "min", "max"};
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])) || reserved.count(s)) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return s.rfind("alloy_", 0) != 0 && s.rfind("__", 0) != 0;
}

static std::string symName(MlirOperation op) {
  MlirAttribute a = getAttr(op, "sym_name");
  return mlirAttributeIsNull(a) ? "" : toString(mlirStringAttrGetValue(a));
}

static bool readOnlyUse(MlirOperation user, intptr_t operand, MlirValue *forward) {
  std::string n = opName(user);
  *forward = MlirValue{nullptr};
  if (n == "memref.load" || n == "vector.load" || n == "gpu.subgroup_mma_load_matrix" || n == "llvm.load")
    return operand == 0;
  if (n == "llvm.ptrtoint") return true;
  if (n == "llvm.getelementptr" || n == "memref.assume_alignment" || n == "memref.cast") {
    if (operand != 0) return false;
    *forward = mlirOperationGetResult(user, 0);
    return true;
  }
  return false;  // stores, atomics, values flowing into loops or branches: assume written
}

bool isReadOnly(MlirValue arg) {
  std::vector<MlirValue> work{arg};
  while (!work.empty()) {
    MlirValue v = work.back();
    work.pop_back();
    for (MlirOpOperand u = mlirValueGetFirstUse(v); !mlirOpOperandIsNull(u); u = mlirOpOperandGetNextUse(u)) {
      MlirValue next;
      if (!readOnlyUse(mlirOpOperandGetOwner(u), mlirOpOperandGetOperandNumber(u), &next)) return false;
      if (!mlirValueIsNull(next)) work.push_back(next);
    }
  }
  return true;
}

static int64_t staticCount(const std::vector<int64_t> &shape, MlirOperation op, MlirType t) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(op, "attribution '" + typeStr(t) + "' needs a static shape");
    n *= d;
  }
  return n;
}

/// MTLDevice.maxThreadgroupMemoryLength on Apple GPUs (32 KiB).
constexpr int64_t kMaxThreadgroupBytes = 32768;

static std::string translateKernel(MlirOperation func, MlirOperation gpuModule) {
  std::string name = symName(func);
  if (!isIdentifier(name)) fail(func, "kernel name '" + name + "' is not a valid MSL identifier");
  MlirBlock entry = mlirRegionGetFirstBlock(mlirOperationGetRegion(func, 0));
  if (mlirBlockIsNull(entry)) fail(func, "kernel has no body");
  if (!mlirBlockIsNull(mlirBlockGetNextInRegion(entry)))
    fail(func, "kernel body has several blocks (unstructured control flow); the Metal translator needs scf");

  MlirAttribute fnTypeAttr = getAttr(func, "function_type");
  if (mlirAttributeIsNull(fnTypeAttr)) fail(func, "gpu.func has no function_type");
  MlirType fnType = mlirTypeAttrGetValue(fnTypeAttr);
  intptr_t numArgs = mlirFunctionTypeGetNumInputs(fnType);
  MlirAttribute wgAttr = getAttr(func, "workgroup_attributions");
  intptr_t numWorkgroup = mlirAttributeIsNull(wgAttr) ? 0 : mlirIntegerAttrGetValueInt(wgAttr);

  Emitter e;
  e.module = gpuModule;
  std::vector<std::string> params;
  for (intptr_t i = 0; i < mlirBlockGetNumArguments(entry); ++i) {
    MlirValue arg = mlirBlockGetArgument(entry, i);
    MlirType t = mlirValueGetType(arg);
    if (i < numArgs) {
      std::string n = "arg" + std::to_string(i);
      std::string attr = " [[buffer(" + std::to_string(i) + ")]]";
      if (mlirTypeIsAMemRef(t)) {
        MemRef m{n, memorySpaceOf(t, func), mlirShapedTypeGetElementType(t), memrefShape(t, func)};
        if (m.space != AddrSpace::Device) fail(func, "kernel argument " + std::to_string(i) + " must be a global memref, got '" + typeStr(t) + "'");
        params.push_back(std::string(isReadOnly(arg) ? "const " : "") + "device " + mslType(m.elementType, func) + "* " + n + attr);
        e.bindMemRef(arg, m);
      } else if (isLLVMPointer(t)) {
        AddrSpace space = pointerSpace(t, func);
        if (space != AddrSpace::Device) fail(func, "kernel argument " + std::to_string(i) + " must be a global pointer (!llvm.ptr<1>)");
        std::string elem = inferPointee(arg, func);
        bool readOnly = isReadOnly(arg);
        params.push_back(std::string(readOnly ? "const " : "") + "device " + elem + "* " + n + attr);
        e.bindPtr(arg, n, Ptr{space, elem, readOnly});
      } else if (mlirTypeIsAInteger(t) || mlirTypeIsAIndex(t) || isFloatLike(t)) {
        params.push_back("constant " + mslType(t, func) + "& " + n + attr);
        e.bind(arg, n);
      } else {
        fail(func, "kernel argument " + std::to_string(i) + " of type '" + typeStr(t) + "' cannot be passed to a Metal kernel");
      }
    } else {
      bool workgroup = i < numArgs + numWorkgroup;
      std::string n = (workgroup ? "wg" : "priv") + std::to_string(i - numArgs);
      MemRef m{n, workgroup ? AddrSpace::Threadgroup : AddrSpace::Thread, mlirShapedTypeGetElementType(t), memrefShape(t, func)};
      int64_t count = staticCount(m.shape, func, t);
      e.prologue(std::string(workgroup ? "threadgroup " : "thread ") + mslType(m.elementType, func) + " " + n + "[" +
                 std::to_string(count) + "];");
      if (workgroup) e.threadgroupBytes += count * byteSize(m.elementType, func);
      e.bindMemRef(arg, m);
    }
  }
  planBarriers(e, func);
  e.emitBlock(entry, {});
  if (e.threadgroupBytes > kMaxThreadgroupBytes)
    fail(func, "kernel declares " + std::to_string(e.threadgroupBytes) + " bytes of threadgroup memory; Metal allows " +
                   std::to_string(kMaxThreadgroupBytes));

  for (auto &b : e.builtins()) params.push_back(b.first);
  std::string out = "kernel void " + name + "(";
  for (size_t i = 0; i < params.size(); ++i) out += (i ? ",\n    " : "\n    ") + params[i];
  out += ") {\n";
  for (auto &p : e.prologueLines()) out += "  " + p + "\n";
  out += e.body() + "}\n";
  return out;
}

std::string translateModule(MlirOperation module) {
  std::string out =
      "// Generated by Alloy's MSL translator from gpu-dialect SIMT IR.\n"
      "#include <metal_stdlib>\n"
      "using namespace metal;\n";
  int kernels = 0;
  MlirBlock top = mlirRegionGetFirstBlock(mlirOperationGetRegion(module, 0));
  for (MlirOperation gm = mlirBlockGetFirstOperation(top); !mlirOperationIsNull(gm); gm = mlirOperationGetNextInBlock(gm)) {
    if (opName(gm) != "gpu.module") continue;
    MlirBlock body = mlirRegionGetFirstBlock(mlirOperationGetRegion(gm, 0));
    for (MlirOperation op = mlirBlockGetFirstOperation(body); !mlirOperationIsNull(op); op = mlirOperationGetNextInBlock(op)) {
      std::string n = opName(op);
      if (n == "gpu.func") {
        if (mlirAttributeIsNull(getAttr(op, "gpu.kernel")))
          fail(op, "device functions (gpu.func without 'kernel') are not supported; inline them first");
        out += "\n" + translateKernel(op, gm);
        ++kernels;
      } else if (n != "memref.global") {  // workgroup globals are declared where a kernel uses them
        fail(op, "op is not supported at gpu.module level by the Metal translator");
      }
    }
  }
  if (kernels == 0) throw TranslationError("module holds no gpu.func kernel inside a gpu.module");
  return out;
}

}  // namespace alloy::msl
