// MSL emitter: shared state and helpers for translating upstream `gpu`-dialect
// SIMT IR (gpu.module / gpu.func kernels) into Metal Shading Language source.
// Works on the module only through the MLIR C API. Op families live in
// ops_*.cpp; each exposes `bool emit<Family>Op(Emitter&, MlirOperation, const std::string&)`
// returning false when the op is not one of its family.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlir-c/BuiltinAttributes.h"
#include "mlir-c/BuiltinTypes.h"
#include "mlir-c/IR.h"

namespace alloy::msl {

/// Raised for IR the translator cannot express in MSL; the message names the op and its location.
struct TranslationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- small C-API helpers (types.cpp) ----
std::string toString(MlirStringRef s);
std::string opName(MlirOperation op);
std::string typeStr(MlirType t);
std::string attrStr(MlirAttribute a);
std::string locationStr(MlirOperation op);
MlirAttribute getAttr(MlirOperation op, const char *name);  // inherent or discardable; null if absent
[[noreturn]] void fail(MlirOperation op, const std::string &msg);

/// Where a memref's storage lives in MSL.
enum class AddrSpace { Device, Threadgroup, Thread };
const char *addrSpaceKeyword(AddrSpace s);

/// MSL spelling of a scalar or vector type (index -> int); fails naming `op` if unsupported.
std::string mslType(MlirType t, MlirOperation op);
/// Address space of an `!llvm.ptr<N>` type (1 global, 3 workgroup, 5 private); fails otherwise.
bool isLLVMPointer(MlirType t);
AddrSpace pointerSpace(MlirType t, MlirOperation op);
/// The unsigned counterpart of an integer (or integer-vector) type (int -> uint, char4 -> uchar4).
std::string mslUnsignedType(MlirType t, MlirOperation op);
/// Type used for wrap-around integer arithmetic (uint for <= 32 bits, ulong for 64).
std::string mslWrapType(MlirType t);
bool isFloatLike(MlirType t);  // float scalar or vector of floats
bool isIndexLike(MlirType t);  // index scalar or vector
MlirType elementTypeOf(MlirType t);  // element of a vector, else t itself
int vectorWidth(MlirType t);  // 0 for scalars
/// `simdgroup_float8x8` / `simdgroup_half8x8` for `!gpu.mma_matrix<8x8xT, ...>`; fails otherwise.
std::string mslMatrixType(MlirType t, MlirOperation op);
bool isMmaMatrix(MlirType t);
/// Size in bytes of a scalar element type as stored in memory (i1 takes a byte).
int64_t byteSize(MlirType t, MlirOperation op);
/// A literal for `value` (an integer or float attribute) of type `t`.
std::string scalarLiteral(MlirAttribute value, MlirType t, MlirOperation op);

/// A memref value as MSL sees it: a base pointer/array name and a row-major static layout.
struct MemRef {
  std::string base;
  AddrSpace space = AddrSpace::Device;
  MlirType elementType{};
  std::vector<int64_t> shape;  // dim 0 may be dynamic; the others must be static
};
AddrSpace memorySpaceOf(MlirType memrefType, MlirOperation op);
/// Checks a memref type is row-major with static inner dims and returns its shape.
std::vector<int64_t> memrefShape(MlirType memrefType, MlirOperation op);

/// An `!llvm.ptr` value as MSL sees it: a typed pointer (`device float*`).
struct Ptr {
  AddrSpace space = AddrSpace::Device;
  std::string elem = "uchar";  // MSL pointee type
  bool readOnly = false;       // derived from a `const device` kernel argument
};

class Emitter {
 public:
  // ---- values ----
  std::string fresh(const char *prefix);
  void bind(MlirValue v, const std::string &name);
  std::string use(MlirValue v, MlirOperation user);  // name of a bound value; fails if unbound
  std::string operand(MlirOperation op, intptr_t i) { return use(mlirOperationGetOperand(op, i), op); }
  /// Emits `T name = expr;` for result `i` of `op` and binds it.
  std::string define(MlirOperation op, intptr_t i, const std::string &expr);
  /// Declares an uninitialised variable of `t` (for values assigned in branches) and returns its name.
  std::string declare(MlirType t, MlirOperation op, const char *prefix);

  /// The value's name, cast to the generic `T uchar*` when it is a pointer (for assignments to
  /// loop-carried / branch-result variables, which hold pointers generically).
  std::string useAssignable(MlirValue v, MlirOperation user);

  // ---- llvm pointers (ops_llvm.cpp) ----
  void bindPtr(MlirValue v, const std::string &name, Ptr p) {
    bind(v, name);
    ptrs_[v.ptr] = std::move(p);
  }
  Ptr ptrInfo(MlirValue v, MlirOperation user);
  /// `v` as a pointer to `elem` (a cast unless it already is one).
  std::string ptrAs(MlirValue v, const std::string &elem, bool isConst, MlirOperation user);
  /// Fields of an aggregate (llvm.struct) result, read back by llvm.extractvalue.
  void bindAggregate(MlirValue v, std::vector<std::string> fields) { aggregates_[v.ptr] = std::move(fields); }
  const std::vector<std::string> &aggregate(MlirValue v, MlirOperation user);

  // ---- memrefs ----
  void bindMemRef(MlirValue v, MemRef m) { memrefs_[v.ptr] = std::move(m); }
  const MemRef &memref(MlirValue v, MlirOperation user);
  /// `base[linear]` index expression for operands [first, first+rank) of `op` indexing `m`.
  std::string linearIndex(MlirOperation op, const MemRef &m, intptr_t first);
  /// `(base + linear)`: a pointer to the element addressed by the indices.
  std::string elementPtr(MlirOperation op, const MemRef &m, intptr_t first);

  // ---- kernel built-ins ----
  /// Name of the kernel parameter carrying `attribute` (e.g. "thread_position_in_grid"), declared on first use.
  std::string builtin(const std::string &attribute, const char *type);
  const std::vector<std::pair<std::string, std::string>> &builtins() const { return builtinParams_; }

  // ---- output ----
  void line(const std::string &s);
  void prologue(const std::string &s) { prologue_.push_back(s); }  // kernel-scope declarations
  int64_t threadgroupBytes = 0;  // static threadgroup memory declared so far
  void indent() { depth_++; }
  void dedent() { depth_--; }
  std::string body() const { return out_.str(); }
  const std::vector<std::string> &prologueLines() const { return prologue_; }

  // ---- traversal (translate.cpp, ops_control.cpp) ----
  /// Emits every op of `block`; its terminator is handed to `terminator` (scf.yield targets etc.).
  void emitBlock(MlirBlock block, const std::vector<std::string> &yieldTargets);
  void emitOp(MlirOperation op);
  /// Assigns `values` (operands of a terminator) to `targets` as a parallel copy.
  void assignParallel(MlirOperation term, intptr_t firstOperand, const std::vector<std::string> &targets);

  MlirOperation module{};  // the gpu.module being translated (for symbol lookups)
  std::set<const void *> deviceFenceBarriers;  // gpu.barrier ops that must also order device memory

 private:
  std::ostringstream out_;
  int depth_ = 1;
  int counter_ = 0;
  std::map<const void *, std::string> names_;
  std::map<const void *, MemRef> memrefs_;
  std::map<const void *, Ptr> ptrs_;
  std::map<const void *, std::vector<std::string>> aggregates_;
  std::vector<std::pair<std::string, std::string>> builtinParams_;  // (type name [[attr]], var)
  std::vector<std::string> prologue_;
};

// ---- op families ----
bool emitArithOp(Emitter &e, MlirOperation op, const std::string &name);     // ops_arith.cpp
bool emitMathOp(Emitter &e, MlirOperation op, const std::string &name);      // ops_math.cpp
bool emitMemoryOp(Emitter &e, MlirOperation op, const std::string &name);    // ops_memory.cpp
bool emitVectorOp(Emitter &e, MlirOperation op, const std::string &name);    // ops_memory.cpp
bool emitControlOp(Emitter &e, MlirOperation op, const std::string &name);   // ops_control.cpp
bool emitGpuOp(Emitter &e, MlirOperation op, const std::string &name);       // ops_gpu.cpp
bool emitLLVMOp(Emitter &e, MlirOperation op, const std::string &name);      // ops_llvm.cpp
/// Emits an atomic read-modify-write of `kind` (MLIR arith AtomicRMWKind numbering) at `ptr`,
/// defining result 0 of `op` as the old value (ops_memory.cpp).
void emitAtomic(Emitter &e, MlirOperation op, int64_t kind, AddrSpace space, const std::string &ptr, const std::string &value);
/// MSL pointee type a kernel's `!llvm.ptr` argument is used with (`uchar` when uses disagree).
std::string inferPointee(MlirValue arg, MlirOperation func);
/// True when a kernel's buffer argument is only ever read (through loads and address arithmetic),
/// so it can be bound as `const device T*` (translate.cpp).
bool isReadOnly(MlirValue arg);
/// Marks the barriers of `func` that a device-memory write may reach (ops_gpu.cpp).
void planBarriers(Emitter &e, MlirOperation func);

/// Translates every kernel of every gpu.module in `module` (ops outside gpu.module are host code
/// and are ignored). Throws TranslationError.
std::string translateModule(MlirOperation module);

}  // namespace alloy::msl
