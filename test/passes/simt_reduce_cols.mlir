// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// Axis 0 of a [4, 1024] f32 tile: a column's four elements are in one thread (registers k,
// k+4, k+8, k+12), and the [1024] result's layout gives that thread that column, so the
// reduction is register-only: a tree of 3 adds per result register, no shuffle, no barrier,
// no workgroup memory.
// CHECK: gpu.func @colsum
// CHECK-NOT: workgroup
// CHECK-SAME: simt.shared_bytes = 0
// CHECK-NOT: gpu.shuffle
// CHECK-NOT: gpu.barrier
// CHECK-COUNT-12: arith.addf
// CHECK-NOT: arith.addf
// CHECK-NOT: gpu.barrier
// CHECK: gpu.return
func.func @colsum(%arg0: !tile.ptr<f32>, %arg1: i32, %arg2: i32, %arg3: !tile.ptr<f32>) attributes {tile.kernel} {
  %0 = "tile.arange"() {end = 4 : i64, start = 0 : i64} : () -> tensor<4xi32>
  %1 = "tile.arange"() {end = 1024 : i64, start = 0 : i64} : () -> tensor<1024xi32>
  %2 = "tile.expand_dims"(%0) {axis = 1 : i64} : (tensor<4xi32>) -> tensor<4x1xi32>
  %c1024_i32 = arith.constant 1024 : i32
  %3 = "tile.splat"(%c1024_i32) : (i32) -> tensor<4x1xi32>
  %4 = arith.muli %2, %3 : tensor<4x1xi32>
  %5 = "tile.splat"(%arg0) : (!tile.ptr<f32>) -> tensor<4x1x!tile.ptr<f32>>
  %6 = "tile.addptr"(%5, %4) : (tensor<4x1x!tile.ptr<f32>>, tensor<4x1xi32>) -> tensor<4x1x!tile.ptr<f32>>
  %7 = "tile.expand_dims"(%1) {axis = 0 : i64} : (tensor<1024xi32>) -> tensor<1x1024xi32>
  %8 = "tile.broadcast"(%6) : (tensor<4x1x!tile.ptr<f32>>) -> tensor<4x1024x!tile.ptr<f32>>
  %9 = "tile.broadcast"(%7) : (tensor<1x1024xi32>) -> tensor<4x1024xi32>
  %10 = "tile.addptr"(%8, %9) : (tensor<4x1024x!tile.ptr<f32>>, tensor<4x1024xi32>) -> tensor<4x1024x!tile.ptr<f32>>
  %11 = "tile.load"(%10) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<4x1024x!tile.ptr<f32>>) -> tensor<4x1024xf32>
  %12 = "tile.splat"(%arg3) : (!tile.ptr<f32>) -> tensor<1024x!tile.ptr<f32>>
  %13 = "tile.addptr"(%12, %1) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f32>>
  %14 = "tile.reduce"(%11) {axis = 0 : i64, kind = "sum"} : (tensor<4x1024xf32>) -> tensor<1024xf32>
  "tile.store"(%13, %14) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xf32>) -> ()
  return
}
