// Types, attributes, literals and locations: the C-API plumbing under the MSL emitter.
#include <cmath>
#include <cstring>
#include <iomanip>

#include "msl/emitter.h"
#include "mlir-c/AffineMap.h"
#include "mlir-c/Dialect/LLVM.h"

namespace alloy::msl {

std::string toString(MlirStringRef s) { return std::string(s.data, s.length); }

static void appendTo(MlirStringRef s, void *ud) { static_cast<std::string *>(ud)->append(s.data, s.length); }

std::string opName(MlirOperation op) { return toString(mlirIdentifierStr(mlirOperationGetName(op))); }

std::string typeStr(MlirType t) {
  std::string s;
  mlirTypePrint(t, appendTo, &s);
  return s;
}

std::string attrStr(MlirAttribute a) {
  std::string s;
  mlirAttributePrint(a, appendTo, &s);
  return s;
}

std::string locationStr(MlirOperation op) {
  MlirLocation loc = mlirOperationGetLocation(op);
  if (mlirLocationIsAFileLineColRange(loc)) {
    return toString(mlirIdentifierStr(mlirLocationFileLineColRangeGetFilename(loc))) + ":" +
           std::to_string(mlirLocationFileLineColRangeGetStartLine(loc)) + ":" +
           std::to_string(mlirLocationFileLineColRangeGetStartColumn(loc));
  }
  std::string s;
  mlirLocationPrint(loc, appendTo, &s);
  if (s.rfind("loc(", 0) == 0 && s.back() == ')') s = s.substr(4, s.size() - 5);
  return s;
}

MlirAttribute getAttr(MlirOperation op, const char *name) {
  return mlirOperationGetAttributeByName(op, mlirStringRefCreateFromCString(name));
}

void fail(MlirOperation op, const std::string &msg) {
  throw TranslationError("'" + opName(op) + "' at " + locationStr(op) + ": " + msg);
}

const char *addrSpaceKeyword(AddrSpace s) {
  switch (s) {
    case AddrSpace::Device: return "device";
    case AddrSpace::Threadgroup: return "threadgroup";
    case AddrSpace::Thread: return "thread";
  }
  return "device";
}

MlirType elementTypeOf(MlirType t) { return mlirTypeIsAVector(t) ? mlirShapedTypeGetElementType(t) : t; }

int vectorWidth(MlirType t) {
  if (!mlirTypeIsAVector(t)) return 0;
  return static_cast<int>(mlirShapedTypeGetDimSize(t, 0));
}

bool isFloatLike(MlirType t) {
  MlirType e = elementTypeOf(t);
  return mlirTypeIsAF16(e) || mlirTypeIsAF32(e) || mlirTypeIsAF64(e) || mlirTypeIsABF16(e);
}

bool isIndexLike(MlirType t) { return mlirTypeIsAIndex(elementTypeOf(t)); }

static std::string scalarName(MlirType t, MlirOperation op, bool wantUnsigned) {
  if (mlirTypeIsAIndex(t)) return wantUnsigned ? "uint" : "int";
  if (mlirTypeIsAInteger(t)) {
    switch (mlirIntegerTypeGetWidth(t)) {
      case 1: return "bool";
      case 8: return wantUnsigned ? "uchar" : "char";
      case 16: return wantUnsigned ? "ushort" : "short";
      case 32: return wantUnsigned ? "uint" : "int";
      case 64: return wantUnsigned ? "ulong" : "long";
      default: break;
    }
  } else if (mlirTypeIsAF32(t)) {
    return "float";
  } else if (mlirTypeIsAF16(t)) {
    return "half";
  } else if (mlirTypeIsABF16(t)) {
    return "bfloat";  // MSL 3.1
  } else if (mlirTypeIsAF64(t)) {
    fail(op, "type 'f64' has no Metal equivalent (MSL has no double)");
  }
  fail(op, "type '" + typeStr(t) + "' is not supported by the Metal translator");
}

bool isLLVMPointer(MlirType t) { return mlirTypeIsALLVMPointerType(t); }

AddrSpace pointerSpace(MlirType t, MlirOperation op) {
  switch (mlirLLVMPointerTypeGetAddressSpace(t)) {
    case 1: return AddrSpace::Device;
    case 3: return AddrSpace::Threadgroup;
    case 5: return AddrSpace::Thread;
    default: fail(op, "pointer type '" + typeStr(t) + "' has no Metal address space (use 1, 3 or 5)");
  }
}

static std::string typeName(MlirType t, MlirOperation op, bool wantUnsigned) {
  if (isLLVMPointer(t)) return std::string(addrSpaceKeyword(pointerSpace(t, op))) + " uchar*";
  if (mlirTypeIsAVector(t)) {
    int64_t rank = mlirShapedTypeGetRank(t);
    int64_t n = rank == 1 ? mlirShapedTypeGetDimSize(t, 0) : 0;
    if (rank != 1 || n < 2 || n > 4)
      fail(op, "vector type '" + typeStr(t) + "' has no MSL equivalent (only 1-D vectors of 2, 3 or 4 elements)");
    return scalarName(mlirShapedTypeGetElementType(t), op, wantUnsigned) + std::to_string(n);
  }
  return scalarName(t, op, wantUnsigned);
}

std::string mslType(MlirType t, MlirOperation op) { return typeName(t, op, false); }
std::string mslUnsignedType(MlirType t, MlirOperation op) { return typeName(t, op, true); }

std::string mslWrapType(MlirType t) {
  MlirType e = elementTypeOf(t);
  bool wide = mlirTypeIsAInteger(e) && mlirIntegerTypeGetWidth(e) == 64;
  std::string s = wide ? "ulong" : "uint";
  return mlirTypeIsAVector(t) ? s + std::to_string(vectorWidth(t)) : s;
}

bool isMmaMatrix(MlirType t) { return typeStr(t).rfind("!gpu.mma_matrix<", 0) == 0; }

std::string mslMatrixType(MlirType t, MlirOperation op) {
  std::string s = typeStr(t);
  if (s.rfind("!gpu.mma_matrix<8x8xf32,", 0) == 0) return "simdgroup_float8x8";
  if (s.rfind("!gpu.mma_matrix<8x8xf16,", 0) == 0) return "simdgroup_half8x8";
  fail(op, "matrix type '" + s + "' has no Metal equivalent (simdgroup matrices are 8x8 of f32 or f16)");
}

int64_t byteSize(MlirType t, MlirOperation op) {
  if (mlirTypeIsAF32(t) || mlirTypeIsAIndex(t)) return 4;
  if (mlirTypeIsAF16(t) || mlirTypeIsABF16(t)) return 2;
  if (mlirTypeIsAInteger(t)) return (mlirIntegerTypeGetWidth(t) + 7) / 8;
  fail(op, "type '" + typeStr(t) + "' has no Metal storage size");
}

enum class FloatKind { F32, F16, BF16 };

static std::string floatLiteral(double v, FloatKind kind) {
  bool isHalf = kind == FloatKind::F16;
  if (kind == FloatKind::BF16) {  // MSL has no bfloat literal suffix: a cast, or its bits
    if (std::isnan(v)) return "as_type<bfloat>(ushort(0x7fc0))";
    if (std::isinf(v)) return v > 0 ? "as_type<bfloat>(ushort(0x7f80))" : "as_type<bfloat>(ushort(0xff80))";
    return "bfloat(" + floatLiteral(v, FloatKind::F32) + ")";
  }
  if (std::isnan(v)) return isHalf ? "as_type<half>(ushort(0x7e00))" : "as_type<float>(0x7fc00000u)";
  if (std::isinf(v)) {
    if (isHalf) return v > 0 ? "as_type<half>(ushort(0x7c00))" : "as_type<half>(ushort(0xfc00))";
    return v > 0 ? "as_type<float>(0x7f800000u)" : "as_type<float>(0xff800000u)";
  }
  std::ostringstream os;
  os << std::setprecision(9) << static_cast<float>(v);
  std::string s = os.str();
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  s += "f";
  return isHalf ? "half(" + s + ")" : s;
}

static std::string intLiteral(int64_t v, MlirType t, MlirOperation op) {
  if (mlirTypeIsAIndex(t)) {
    if (v < INT32_MIN || v > UINT32_MAX) fail(op, "index constant " + std::to_string(v) + " does not fit the 32-bit index type");
    return std::to_string(static_cast<int32_t>(v));
  }
  unsigned w = mlirIntegerTypeGetWidth(t);
  if (w == 1) return (v & 1) ? "true" : "false";
  if (w == 64) {
    if (v == INT64_MIN) return "(-9223372036854775807L - 1L)";
    return std::to_string(v) + "L";
  }
  int32_t x = static_cast<int32_t>(v);
  std::string lit = x == INT32_MIN ? "(-2147483647 - 1)" : std::to_string(x);
  if (w == 32) return lit;
  return scalarName(t, op, false) + "(" + lit + ")";
}

std::string scalarLiteral(MlirAttribute value, MlirType t, MlirOperation op) {
  if (mlirAttributeIsAFloat(value)) {
    if (!mlirTypeIsAF32(t) && !mlirTypeIsAF16(t) && !mlirTypeIsABF16(t)) scalarName(t, op, false);  // fails, naming it
    FloatKind kind = mlirTypeIsAF16(t) ? FloatKind::F16 : mlirTypeIsABF16(t) ? FloatKind::BF16 : FloatKind::F32;
    return floatLiteral(mlirFloatAttrGetValueDouble(value), kind);
  }
  if (mlirAttributeIsAInteger(value)) return intLiteral(mlirIntegerAttrGetValueInt(value), t, op);
  if (mlirAttributeIsABool(value)) return mlirBoolAttrGetValue(value) ? "true" : "false";
  fail(op, "constant '" + attrStr(value) + "' is not supported by the Metal translator");
}

AddrSpace memorySpaceOf(MlirType memrefType, MlirOperation op) {
  MlirAttribute ms = mlirMemRefTypeGetMemorySpace(memrefType);
  if (mlirAttributeIsNull(ms)) return AddrSpace::Device;
  if (mlirAttributeIsAInteger(ms)) {
    switch (mlirIntegerAttrGetValueInt(ms)) {
      case 0: case 1: return AddrSpace::Device;
      case 3: return AddrSpace::Threadgroup;
      case 5: return AddrSpace::Thread;
      default: break;
    }
  }
  std::string s = attrStr(ms);
  if (s == "#gpu.address_space<global>") return AddrSpace::Device;
  if (s == "#gpu.address_space<workgroup>") return AddrSpace::Threadgroup;
  if (s == "#gpu.address_space<private>") return AddrSpace::Thread;
  fail(op, "memory space '" + s + "' has no Metal address space");
}

std::vector<int64_t> memrefShape(MlirType t, MlirOperation op) {
  if (!mlirTypeIsAMemRef(t)) fail(op, "expected a memref, got '" + typeStr(t) + "'");
  MlirAttribute layout = mlirMemRefTypeGetLayout(t);
  bool identity = mlirAttributeIsNull(layout) ||
                  (mlirAttributeIsAAffineMap(layout) && mlirAffineMapIsIdentity(mlirAffineMapAttrGetValue(layout)));
  if (!identity) fail(op, "memref '" + typeStr(t) + "' has a non-identity layout; the Metal translator needs row-major memrefs");
  std::vector<int64_t> shape;
  int64_t rank = mlirShapedTypeGetRank(t);
  for (int64_t d = 0; d < rank; ++d) {
    if (mlirShapedTypeIsDynamicDim(t, d)) {
      if (d != 0) fail(op, "memref '" + typeStr(t) + "' has a dynamic inner dimension; only the outermost may be dynamic");
      shape.push_back(-1);
    } else {
      shape.push_back(mlirShapedTypeGetDimSize(t, d));
    }
  }
  return shape;
}

}  // namespace alloy::msl
