// gpu dialect -> Metal kernel built-ins, barriers, SIMD-group functions and simdgroup matrices.
//
// A gpu subgroup is a Metal SIMD-group (32 lanes on Apple GPUs). gpu.subgroup_mma_* maps onto
// simdgroup_matrix 8x8 operations, so the SIMT form must tile its dots 8x8 for this target.
#include <algorithm>

#include "msl/emitter.h"

namespace alloy::msl {

static MlirType resultType(MlirOperation op) { return mlirValueGetType(mlirOperationGetResult(op, 0)); }

/// "x" / "y" / "z" from `#gpu<dim x>`.
static std::string dimension(MlirOperation op) {
  std::string s = attrStr(getAttr(op, "dimension"));
  if (s == "#gpu<dim x>") return "x";
  if (s == "#gpu<dim y>") return "y";
  if (s == "#gpu<dim z>") return "z";
  fail(op, "unknown dimension " + s);
}

static bool emitIds(Emitter &e, MlirOperation op, const std::string &name) {
  static const char *const k3[][2] = {
      {"gpu.thread_id", "thread_position_in_threadgroup"}, {"gpu.block_id", "threadgroup_position_in_grid"},
      {"gpu.block_dim", "threads_per_threadgroup"},        {"gpu.grid_dim", "threadgroups_per_grid"},
      {"gpu.global_id", "thread_position_in_grid"},
  };
  static const char *const k1[][2] = {
      {"gpu.lane_id", "thread_index_in_simdgroup"},       {"gpu.subgroup_id", "simdgroup_index_in_threadgroup"},
      {"gpu.subgroup_size", "threads_per_simdgroup"},     {"gpu.num_subgroups", "simdgroups_per_threadgroup"},
  };
  for (auto &k : k3)
    if (name == k[0]) {
      e.define(op, 0, mslType(resultType(op), op) + "(" + e.builtin(k[1], "uint3") + "." + dimension(op) + ")");
      return true;
    }
  for (auto &k : k1)
    if (name == k[0]) {
      e.define(op, 0, mslType(resultType(op), op) + "(" + e.builtin(k[1], "uint") + ")");
      return true;
    }
  return false;
}

static void barrier(Emitter &e, MlirOperation op) {
  // gpu.barrier makes every earlier memory access of the workgroup visible; device memory is
  // fenced too unless no device write can precede the barrier (planBarriers).
  bool device = e.deviceFenceBarriers.count(op.ptr) > 0;
  e.line(device ? "threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);"
                : "threadgroup_barrier(mem_flags::mem_threadgroup);");
}

namespace {
struct BarrierScan {
  int order = 0;
  std::vector<std::pair<int, MlirOperation>> writes, barriers;  // (pre-order position, op)
};
}  // namespace

static bool writesDevice(MlirOperation op) {
  std::string n = opName(op);
  intptr_t target = -1;  // the operand holding the memref / pointer written
  if (n == "memref.store" || n == "memref.atomic_rmw" || n == "gpu.subgroup_mma_store_matrix" || n == "vector.store" ||
      n == "llvm.store")
    target = 1;
  else if (n == "llvm.atomicrmw" || n == "llvm.cmpxchg")
    target = 0;
  if (target < 0) return false;
  MlirType t = mlirValueGetType(mlirOperationGetOperand(op, target));
  AddrSpace space = isLLVMPointer(t) ? pointerSpace(t, op) : memorySpaceOf(t, op);
  return space == AddrSpace::Device;
}

static MlirWalkResult scanBarriers(MlirOperation op, void *ud) {
  auto *s = static_cast<BarrierScan *>(ud);
  int pos = s->order++;
  if (opName(op) == "gpu.barrier") s->barriers.emplace_back(pos, op);
  else if (writesDevice(op)) s->writes.emplace_back(pos, op);
  return MlirWalkResultAdvance;
}

/// Innermost-first loops (scf.for / scf.while) enclosing `op`.
static std::vector<const void *> enclosingLoops(MlirOperation op) {
  std::vector<const void *> loops;
  for (MlirOperation p = mlirOperationGetParentOperation(op); !mlirOperationIsNull(p); p = mlirOperationGetParentOperation(p)) {
    std::string n = opName(p);
    if (n == "scf.for" || n == "scf.while") loops.push_back(p.ptr);
    if (n == "gpu.func") break;
  }
  return loops;
}

void planBarriers(Emitter &e, MlirOperation func) {
  BarrierScan s;
  mlirOperationWalk(func, scanBarriers, &s, MlirWalkPreOrder);
  for (auto &[bpos, b] : s.barriers) {
    std::vector<const void *> bl = enclosingLoops(b);
    for (auto &[wpos, w] : s.writes) {
      bool reaches = wpos < bpos;
      for (const void *l : enclosingLoops(w))
        if (std::find(bl.begin(), bl.end(), l) != bl.end()) reaches = true;  // a later iteration reaches it
      if (reaches) {
        e.deviceFenceBarriers.insert(b.ptr);
        break;
      }
    }
  }
}

static bool isConstantInt(MlirValue v, int64_t *out) {
  if (!mlirValueIsAOpResult(v)) return false;
  MlirOperation def = mlirOpResultGetOwner(v);
  if (opName(def) != "arith.constant") return false;
  MlirAttribute a = getAttr(def, "value");
  if (!mlirAttributeIsAInteger(a)) return false;
  *out = mlirIntegerAttrGetValueInt(a);
  return true;
}

static void shuffle(Emitter &e, MlirOperation op) {
  // operands: value, offset (i32), width (i32); results: value, valid (i1)
  std::string mode = attrStr(getAttr(op, "mode"));
  MlirType t = resultType(op);
  MlirType et = elementTypeOf(t);
  if ((mlirTypeIsAInteger(et) && mlirIntegerTypeGetWidth(et) == 64) || (mlirTypeIsAInteger(et) && mlirIntegerTypeGetWidth(et) == 1))
    fail(op, "SIMD-group shuffles take 8-, 16- or 32-bit values, got '" + typeStr(t) + "'");
  int64_t width = 0;
  bool constWidth = isConstantInt(mlirOperationGetOperand(op, 2), &width);
  std::string v = e.operand(op, 0), off = e.operand(op, 1), w = e.operand(op, 2);
  std::string call, valid;
  if (mode == "#gpu<shuffle_mode xor>") {
    if (constWidth && (width <= 0 || width > 32 || (width & (width - 1))))
      fail(op, "xor shuffle width must be a power of two up to the SIMD-group size (32)");
    call = "simd_shuffle_xor(" + v + ", ushort(" + off + "))";
    valid = "(uint(" + off + ") < uint(" + w + "))";
  } else {
    if (!constWidth || width != 32)
      fail(op, "shuffle modes other than xor need a constant width of 32 (the SIMD-group size)");
    if (mode == "#gpu<shuffle_mode idx>") {
      call = "simd_shuffle(" + v + ", ushort(" + off + "))";
      valid = "(uint(" + off + ") < 32u)";
    } else if (mode == "#gpu<shuffle_mode down>") {
      call = "simd_shuffle_down(" + v + ", ushort(" + off + "))";
      valid = "((" + e.builtin("thread_index_in_simdgroup", "uint") + " + uint(" + off + ")) < 32u)";
    } else if (mode == "#gpu<shuffle_mode up>") {
      call = "simd_shuffle_up(" + v + ", ushort(" + off + "))";
      valid = "(" + e.builtin("thread_index_in_simdgroup", "uint") + " >= uint(" + off + "))";
    } else {
      fail(op, "unknown shuffle mode " + mode);
    }
  }
  e.define(op, 0, call);
  e.define(op, 1, valid);
}

static void subgroupReduce(Emitter &e, MlirOperation op) {
  MlirAttribute cluster = getAttr(op, "cluster_size");
  if (!mlirAttributeIsNull(cluster)) fail(op, "clustered subgroup reductions are not supported by the Metal translator");
  std::string kind = attrStr(getAttr(op, "op"));
  MlirType t = resultType(op);
  std::string v = e.operand(op, 0), ty = mslType(t, op);
  auto unsignedCall = [&](const char *fn) { return ty + "(" + fn + "(" + mslUnsignedType(t, op) + "(" + v + ")))"; };
  std::string r;
  if (kind == "#gpu<all_reduce_op add>") r = "simd_sum(" + v + ")";
  else if (kind == "#gpu<all_reduce_op mul>") r = "simd_product(" + v + ")";
  else if (kind == "#gpu<all_reduce_op maxnumf>" || kind == "#gpu<all_reduce_op maxsi>") r = "simd_max(" + v + ")";
  else if (kind == "#gpu<all_reduce_op minnumf>" || kind == "#gpu<all_reduce_op minsi>") r = "simd_min(" + v + ")";
  else if (kind == "#gpu<all_reduce_op maxui>") r = unsignedCall("simd_max");
  else if (kind == "#gpu<all_reduce_op minui>") r = unsignedCall("simd_min");
  else if (kind == "#gpu<all_reduce_op and>") r = "simd_and(" + v + ")";
  else if (kind == "#gpu<all_reduce_op or>") r = "simd_or(" + v + ")";
  else if (kind == "#gpu<all_reduce_op xor>") r = "simd_xor(" + v + ")";
  else if (kind == "#gpu<all_reduce_op maximumf>" || kind == "#gpu<all_reduce_op minimumf>") {
    if (mlirTypeIsAVector(t)) fail(op, "NaN-propagating vector subgroup reductions are not supported");
    const char *fn = kind == "#gpu<all_reduce_op maximumf>" ? "simd_max(" : "simd_min(";
    std::string nan = mlirTypeIsAF16(t) ? "as_type<half>(ushort(0x7e00))" : "as_type<float>(0x7fc00000u)";
    r = "(simd_any(isnan(" + v + ")) ? " + nan + " : " + fn + v + "))";
  } else {
    fail(op, "subgroup reduction " + kind + " is not supported by the Metal translator");
  }
  e.define(op, 0, r);
}

// ---------------------------------------------------------------- simdgroup matrices

static void checkElement(MlirOperation op, const MemRef &m, MlirType matrix) {
  std::string mt = mslMatrixType(matrix, op);
  std::string et = mslType(m.elementType, op);
  if ((mt == "simdgroup_float8x8") != (et == "float") || (mt == "simdgroup_half8x8") != (et == "half"))
    fail(op, "simdgroup matrix '" + typeStr(matrix) + "' and memref element type '" + typeStr(m.elementType) + "' differ");
}

static std::string leadDimension(MlirOperation op) {
  MlirAttribute ld = getAttr(op, "leadDimension");
  if (mlirAttributeIsNull(ld)) fail(op, "missing leadDimension");
  return "ulong(" + std::to_string(mlirIntegerAttrGetValueInt(ld)) + ")";
}

static std::string transposeArgs(MlirOperation op) {
  return mlirAttributeIsNull(getAttr(op, "transpose")) ? "" : ", ulong2(0, 0), true";
}

static bool emitMma(Emitter &e, MlirOperation op, const std::string &name) {
  if (name == "gpu.subgroup_mma_load_matrix") {
    MlirType mt = resultType(op);
    const MemRef &m = e.memref(mlirOperationGetOperand(op, 0), op);
    checkElement(op, m, mt);
    std::string d = e.declare(mt, op, "v");
    e.line("simdgroup_load(" + d + ", " + e.elementPtr(op, m, 1) + ", " + leadDimension(op) + transposeArgs(op) + ");");
    e.bind(mlirOperationGetResult(op, 0), d);
  } else if (name == "gpu.subgroup_mma_store_matrix") {
    MlirType mt = mlirValueGetType(mlirOperationGetOperand(op, 0));
    const MemRef &m = e.memref(mlirOperationGetOperand(op, 1), op);
    checkElement(op, m, mt);
    e.line("simdgroup_store(" + e.operand(op, 0) + ", " + e.elementPtr(op, m, 2) + ", " + leadDimension(op) +
           transposeArgs(op) + ");");
  } else if (name == "gpu.subgroup_mma_compute") {
    if (!mlirAttributeIsNull(getAttr(op, "a_transpose")) || !mlirAttributeIsNull(getAttr(op, "b_transpose")))
      fail(op, "transposed operands: load them with `transpose` instead");
    MlirType dt = resultType(op);
    std::string dty = mslMatrixType(dt, op);
    for (intptr_t i = 0; i < 3; ++i)
      if (mslMatrixType(mlirValueGetType(mlirOperationGetOperand(op, i)), op) != dty)
        fail(op, "mixed-precision simdgroup MMA: the Metal Shading Language Specification's "
                 "simdgroup_multiply_accumulate takes one element type for A, B and C");
    std::string d = e.declare(dt, op, "v");
    e.line("simdgroup_multiply_accumulate(" + d + ", " + e.operand(op, 0) + ", " + e.operand(op, 1) + ", " + e.operand(op, 2) + ");");
    e.bind(mlirOperationGetResult(op, 0), d);
  } else if (name == "gpu.subgroup_mma_constant_matrix") {
    MlirType mt = resultType(op);
    std::string et = mslMatrixType(mt, op) == "simdgroup_float8x8" ? "float" : "half";
    e.define(op, 0, "make_filled_simdgroup_matrix<" + et + ", 8, 8>(" + e.operand(op, 0) + ")");
  } else {
    return false;
  }
  return true;
}

bool emitGpuOp(Emitter &e, MlirOperation op, const std::string &name) {
  if (name.rfind("gpu.", 0) != 0) return false;
  if (emitIds(e, op, name) || emitMma(e, op, name)) return true;
  if (name == "gpu.barrier") barrier(e, op);
  else if (name == "gpu.shuffle") shuffle(e, op);
  else if (name == "gpu.subgroup_reduce") subgroupReduce(e, op);
  else return false;
  return true;
}

}  // namespace alloy::msl
