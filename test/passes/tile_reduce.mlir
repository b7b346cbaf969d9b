// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-vector,canonicalize,cse)' | FileCheck %s

// Last-axis reductions: one vector.reduction per row; float max propagates NaN (maximumf).
// CHECK-LABEL: func.func @rows
// CHECK-COUNT-4: vector.reduction <maximumf>, {{.*}} : vector<8xf32> into f32
// CHECK: vector.from_elements {{.*}} : vector<4xf32>
// Leading-axis reductions combine rows elementwise.
// CHECK: arith.addf {{.*}} : vector<8xf32>
// argmin: the minimum, then the first index holding it (NaN counts as a match).
// CHECK: vector.reduction <minimumf>
// CHECK: arith.cmpf uno
// CHECK: vector.reduction <minsi>, {{.*}} : vector<8xi32> into i32
func.func @rows(%p: !tile.ptr<f32>, %o: !tile.ptr<f32>, %q: !tile.ptr<i32>) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 8 : i64} : () -> tensor<8xi32>
  %pp = "tile.splat"(%p) : (!tile.ptr<f32>) -> tensor<8x!tile.ptr<f32>>
  %pa = "tile.addptr"(%pp, %r) : (tensor<8x!tile.ptr<f32>>, tensor<8xi32>) -> tensor<8x!tile.ptr<f32>>
  %v = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<8x!tile.ptr<f32>>) -> tensor<8xf32>
  %c8 = arith.constant 8 : i32
  %r4r = "tile.arange"() {start = 0 : i64, end = 4 : i64} : () -> tensor<4xi32>
  %s8 = "tile.splat"(%c8) : (i32) -> tensor<4xi32>
  %rows = arith.muli %r4r, %s8 : tensor<4xi32>
  %rows2 = "tile.expand_dims"(%rows) {axis = 1 : i64} : (tensor<4xi32>) -> tensor<4x1xi32>
  %rowsb = "tile.broadcast"(%rows2) : (tensor<4x1xi32>) -> tensor<4x8xi32>
  %cols2 = "tile.expand_dims"(%r) {axis = 0 : i64} : (tensor<8xi32>) -> tensor<1x8xi32>
  %colsb = "tile.broadcast"(%cols2) : (tensor<1x8xi32>) -> tensor<4x8xi32>
  %off2 = arith.addi %rowsb, %colsb : tensor<4x8xi32>
  %pp2 = "tile.splat"(%p) : (!tile.ptr<f32>) -> tensor<4x8x!tile.ptr<f32>>
  %pa2 = "tile.addptr"(%pp2, %off2) : (tensor<4x8x!tile.ptr<f32>>, tensor<4x8xi32>) -> tensor<4x8x!tile.ptr<f32>>
  %t = "tile.load"(%pa2) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<4x8x!tile.ptr<f32>>) -> tensor<4x8xf32>
  %m = "tile.reduce"(%t) {axis = 1 : i64, kind = "max"} : (tensor<4x8xf32>) -> tensor<4xf32>
  %s = "tile.reduce"(%t) {axis = 0 : i64, kind = "sum"} : (tensor<4x8xf32>) -> tensor<8xf32>
  %i = "tile.reduce"(%v) {axis = 0 : i64, kind = "argmin"} : (tensor<8xf32>) -> i32
  %op = "tile.splat"(%o) : (!tile.ptr<f32>) -> tensor<8x!tile.ptr<f32>>
  %oa = "tile.addptr"(%op, %r) : (tensor<8x!tile.ptr<f32>>, tensor<8xi32>) -> tensor<8x!tile.ptr<f32>>
  "tile.store"(%oa, %s) : (tensor<8x!tile.ptr<f32>>, tensor<8xf32>) -> ()
  %r4 = "tile.arange"() {start = 0 : i64, end = 4 : i64} : () -> tensor<4xi32>
  %op4 = "tile.splat"(%o) : (!tile.ptr<f32>) -> tensor<4x!tile.ptr<f32>>
  %oa4 = "tile.addptr"(%op4, %r4) : (tensor<4x!tile.ptr<f32>>, tensor<4xi32>) -> tensor<4x!tile.ptr<f32>>
  "tile.store"(%oa4, %m) : (tensor<4x!tile.ptr<f32>>, tensor<4xf32>) -> ()
  "tile.store"(%q, %i) : (!tile.ptr<i32>, i32) -> ()
  return
}
