// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-vector)' | FileCheck %s

// A transpose of a 16-bit float tile moves the values as their i16 bits: LLVM lowers a shuffle of
// bfloat lanes on AVX2 through f32 conversions that call the compiler runtime (__truncsfbf2), which a
// kernel's shared object does not link.
// CHECK-LABEL: func.func @trans_bf16
// CHECK: arith.bitcast {{.*}} : vector<4x8xbf16> to vector<4x8xi16>
// CHECK: vector.transpose {{.*}}, [1, 0] : vector<4x8xi16> to vector<8x4xi16>
// CHECK: arith.bitcast {{.*}} : vector<8x4xi16> to vector<8x4xbf16>
// CHECK-NOT: vector.transpose {{.*}}bf16
func.func @trans_bf16(%x: !tile.ptr<bf16>, %y: !tile.ptr<bf16>) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 32 : i64} : () -> tensor<32xi32>
  %p = "tile.splat"(%x) : (!tile.ptr<bf16>) -> tensor<32x!tile.ptr<bf16>>
  %pa = "tile.addptr"(%p, %r) : (tensor<32x!tile.ptr<bf16>>, tensor<32xi32>) -> tensor<32x!tile.ptr<bf16>>
  %v = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<32x!tile.ptr<bf16>>) -> tensor<32xbf16>
  %m = "tile.reshape"(%v) : (tensor<32xbf16>) -> tensor<4x8xbf16>
  %t = "tile.trans"(%m) : (tensor<4x8xbf16>) -> tensor<8x4xbf16>
  %f = "tile.reshape"(%t) : (tensor<8x4xbf16>) -> tensor<32xbf16>
  %q = "tile.splat"(%y) : (!tile.ptr<bf16>) -> tensor<32x!tile.ptr<bf16>>
  %qa = "tile.addptr"(%q, %r) : (tensor<32x!tile.ptr<bf16>>, tensor<32xi32>) -> tensor<32x!tile.ptr<bf16>>
  "tile.store"(%qa, %f) : (tensor<32x!tile.ptr<bf16>>, tensor<32xbf16>) -> ()
  return
}
