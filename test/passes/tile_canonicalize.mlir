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
