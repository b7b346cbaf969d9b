// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-vector,canonicalize,cse)' | FileCheck %s

// The contiguity analysis picks the access per tile:
//  - rows of stride 1 (x + r[:, None] * ld + c[None, :]): one masked vector load per row,
//  - stride 0 along the last dim (s + r[:, None] broadcast): one scalar load + broadcast per row,
//  - anything else (o + c[None, :] * ld + r[:, None]): a scatter.
// CHECK-LABEL: func.func @access
// CHECK-COUNT-4: vector.maskedload {{.*}} : memref<?xf32>, vector<8xi1>, vector<8xf32> into vector<8xf32>
// CHECK-NOT: vector.maskedload
// CHECK-COUNT-4: memref.load {{.*}} : memref<?xf32>
// CHECK-NOT: vector.gather
// CHECK: vector.scatter {{.*}} : memref<?xf32>, vector<32xi64>, vector<32xi1>, vector<32xf32>
func.func @access(%x: !tile.ptr<f32>, %s: !tile.ptr<f32>, %o: !tile.ptr<f32>, %ld: i32) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 4 : i64} : () -> tensor<4xi32>
  %c = "tile.arange"() {start = 0 : i64, end = 8 : i64} : () -> tensor<8xi32>
  %lds = "tile.splat"(%ld) : (i32) -> tensor<4xi32>
  %rl = arith.muli %r, %lds : tensor<4xi32>
  %rl2 = "tile.expand_dims"(%rl) {axis = 1 : i64} : (tensor<4xi32>) -> tensor<4x1xi32>
  %rlb = "tile.broadcast"(%rl2) : (tensor<4x1xi32>) -> tensor<4x8xi32>
  %c2 = "tile.expand_dims"(%c) {axis = 0 : i64} : (tensor<8xi32>) -> tensor<1x8xi32>
  %cb = "tile.broadcast"(%c2) : (tensor<1x8xi32>) -> tensor<4x8xi32>
  %off = arith.addi %rlb, %cb : tensor<4x8xi32>
  %n = "tile.splat"(%ld) : (i32) -> tensor<4x8xi32>
  %mask = arith.cmpi slt, %cb, %n : tensor<4x8xi32>
  %xp = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<4x8x!tile.ptr<f32>>
  %xa = "tile.addptr"(%xp, %off) : (tensor<4x8x!tile.ptr<f32>>, tensor<4x8xi32>) -> tensor<4x8x!tile.ptr<f32>>
  %v = "tile.load"(%xa, %mask) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<4x8x!tile.ptr<f32>>, tensor<4x8xi1>) -> tensor<4x8xf32>
  %r2 = "tile.expand_dims"(%r) {axis = 1 : i64} : (tensor<4xi32>) -> tensor<4x1xi32>
  %rb = "tile.broadcast"(%r2) : (tensor<4x1xi32>) -> tensor<4x8xi32>
  %sp = "tile.splat"(%s) : (!tile.ptr<f32>) -> tensor<4x8x!tile.ptr<f32>>
  %sa = "tile.addptr"(%sp, %rb) : (tensor<4x8x!tile.ptr<f32>>, tensor<4x8xi32>) -> tensor<4x8x!tile.ptr<f32>>
  %sv = "tile.load"(%sa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<4x8x!tile.ptr<f32>>) -> tensor<4x8xf32>
  %y = arith.mulf %v, %sv : tensor<4x8xf32>
  %ldc = "tile.splat"(%ld) : (i32) -> tensor<1x8xi32>
  %cl = arith.muli %c2, %ldc : tensor<1x8xi32>
  %clb = "tile.broadcast"(%cl) : (tensor<1x8xi32>) -> tensor<4x8xi32>
  %toff = arith.addi %clb, %rb : tensor<4x8xi32>
  %op = "tile.splat"(%o) : (!tile.ptr<f32>) -> tensor<4x8x!tile.ptr<f32>>
  %oa = "tile.addptr"(%op, %toff) : (tensor<4x8x!tile.ptr<f32>>, tensor<4x8xi32>) -> tensor<4x8x!tile.ptr<f32>>
  "tile.store"(%oa, %y, %mask) : (tensor<4x8x!tile.ptr<f32>>, tensor<4x8xf32>, tensor<4x8xi1>) -> ()
  return
}
