// RUN: alloy-opt %s --pass-pipeline='builtin.module(tile-canonicalize)' | FileCheck %s

// Duplicate pure tile ops merge; unused ones (and unused loads) disappear; stores stay.
// CHECK-LABEL: func.func @k
func.func @k(%p: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  // CHECK: %[[R:.*]] = "tile.arange"
  // CHECK-NOT: "tile.arange"
  %r0 = "tile.arange"() {start = 0 : i64, end = 16 : i64} : () -> tensor<16xi32>
  %r1 = "tile.arange"() {start = 0 : i64, end = 16 : i64} : () -> tensor<16xi32>
  %s = arith.addi %r0, %r1 : tensor<16xi32>
  // CHECK: %[[P:.*]] = "tile.splat"(%arg0)
  // CHECK-NOT: "tile.splat"(%arg0)
  %p0 = "tile.splat"(%p) : (!tile.ptr<f32>) -> tensor<16x!tile.ptr<f32>>
  %p1 = "tile.splat"(%p) : (!tile.ptr<f32>) -> tensor<16x!tile.ptr<f32>>
  %a0 = "tile.addptr"(%p0, %s) : (tensor<16x!tile.ptr<f32>>, tensor<16xi32>) -> tensor<16x!tile.ptr<f32>>
  %a1 = "tile.addptr"(%p1, %s) : (tensor<16x!tile.ptr<f32>>, tensor<16xi32>) -> tensor<16x!tile.ptr<f32>>
  // CHECK-NOT: "tile.load"
  %dead = "tile.load"(%a1) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<16x!tile.ptr<f32>>) -> tensor<16xf32>
  %deadpid = "tile.program_id"() {axis = 0 : i64} : () -> i32
  %c = arith.constant 1.0 : f32
  %v = "tile.splat"(%c) : (f32) -> tensor<16xf32>
  // CHECK: "tile.store"
  "tile.store"(%a0, %v) : (tensor<16x!tile.ptr<f32>>, tensor<16xf32>) -> ()
  return
}

// A reduction of a transposed 2-D tile reduces the tile along the other axis; the transpose goes.
// CHECK-LABEL: func.func @reduce_of_trans
// CHECK-NOT: "tile.trans"
// CHECK: "tile.reduce"(%arg0) {axis = 0 : i64, kind = "max"} : (tensor<4x64xf32>) -> tensor<64xf32>
// CHECK: "tile.reduce"(%arg0) {axis = 1 : i64, kind = "argmin"} : (tensor<4x64xf32>) -> tensor<4xi32>
func.func @reduce_of_trans(%x: tensor<4x64xf32>, %p: !tile.ptr<f32>, %q: !tile.ptr<i32>) attributes {tile.kernel} {
  %t = "tile.trans"(%x) : (tensor<4x64xf32>) -> tensor<64x4xf32>
  %m = "tile.reduce"(%t) {axis = 1 : i64, kind = "max"} : (tensor<64x4xf32>) -> tensor<64xf32>
  %i = "tile.reduce"(%t) {axis = 0 : i64, kind = "argmin"} : (tensor<64x4xf32>) -> tensor<4xi32>
  %c = "tile.arange"() {start = 0 : i64, end = 64 : i64} : () -> tensor<64xi32>
  %ps = "tile.splat"(%p) : (!tile.ptr<f32>) -> tensor<64x!tile.ptr<f32>>
  %pa = "tile.addptr"(%ps, %c) : (tensor<64x!tile.ptr<f32>>, tensor<64xi32>) -> tensor<64x!tile.ptr<f32>>
  "tile.store"(%pa, %m) : (tensor<64x!tile.ptr<f32>>, tensor<64xf32>) -> ()
  %r = "tile.arange"() {start = 0 : i64, end = 4 : i64} : () -> tensor<4xi32>
  %qs = "tile.splat"(%q) : (!tile.ptr<i32>) -> tensor<4x!tile.ptr<i32>>
  %qa = "tile.addptr"(%qs, %r) : (tensor<4x!tile.ptr<i32>>, tensor<4xi32>) -> tensor<4x!tile.ptr<i32>>
  "tile.store"(%qa, %i) : (tensor<4x!tile.ptr<i32>>, tensor<4xi32>) -> ()
  return
}
