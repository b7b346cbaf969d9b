// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// Rows of a [4, 1024] f32 tile, reduced along the last axis then broadcast back: every thread
// holds four 4-element chunks of each row (16 registers); it combines them per row, a 5-step
// butterfly (shfl.sync.bfly) runs for the 4 rows at once (20 shuffles), lane 0 of each warp
// writes its 4 partials to the reduction's own [4 rows x 8 warps] buffer, and after ONE barrier
// every thread combines the 32 partials (the [4] result is replicated, so the indices are
// constants). No second barrier (the buffer is not reused) and no workgroup memory for the
// broadcast of the [4, 1] result to [4, 1024]: each register takes its row's register.
// CHECK: gpu.func @rowmax
// CHECK-SAME: workgroup([[WG:%.*]] : memref<32xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME: simt.shared_bytes = 128
// CHECK-COUNT-4: llvm.load {{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK-NOT: gpu.barrier
// CHECK-COUNT-4: gpu.shuffle xor {{.*}}, %c16_i32, %c32_i32 : f32
// CHECK-COUNT-4: gpu.shuffle xor {{.*}}, %c8_i32, %c32_i32 : f32
// CHECK-COUNT-4: gpu.shuffle xor {{.*}}, %c4_i32, %c32_i32 : f32
// CHECK-COUNT-4: gpu.shuffle xor {{.*}}, %c2_i32, %c32_i32 : f32
// CHECK-COUNT-4: gpu.shuffle xor {{.*}}, %c1_i32, %c32_i32 : f32
// CHECK: scf.if
// CHECK-COUNT-4: memref.store {{.*}}, [[WG]]
// CHECK: gpu.barrier
// CHECK: memref.load [[WG]][%c0]
// CHECK: memref.load [[WG]][%c31] : memref<32xf32, #gpu.address_space<workgroup>>
// CHECK-NOT: gpu.barrier
// CHECK-NOT: memref
// CHECK: llvm.store {{.*}} {alignment = 16 : i64} : vector<4xf32>, !llvm.ptr<1>
// CHECK-NOT: gpu.barrier
// CHECK: gpu.return
func.func @rowmax(%arg0: !tile.ptr<f32>, %arg1: i32, %arg2: i32, %arg3: !tile.ptr<f32>) attributes {tile.kernel} {
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
  %12 = "tile.expand_dims"(%0) {axis = 1 : i64} : (tensor<4xi32>) -> tensor<4x1xi32>
  %c1024_i32_0 = arith.constant 1024 : i32
  %13 = "tile.splat"(%c1024_i32_0) : (i32) -> tensor<4x1xi32>
  %14 = arith.muli %12, %13 : tensor<4x1xi32>
  %15 = "tile.splat"(%arg3) : (!tile.ptr<f32>) -> tensor<4x1x!tile.ptr<f32>>
  %16 = "tile.addptr"(%15, %14) : (tensor<4x1x!tile.ptr<f32>>, tensor<4x1xi32>) -> tensor<4x1x!tile.ptr<f32>>
  %17 = "tile.expand_dims"(%1) {axis = 0 : i64} : (tensor<1024xi32>) -> tensor<1x1024xi32>
  %18 = "tile.broadcast"(%16) : (tensor<4x1x!tile.ptr<f32>>) -> tensor<4x1024x!tile.ptr<f32>>
  %19 = "tile.broadcast"(%17) : (tensor<1x1024xi32>) -> tensor<4x1024xi32>
  %20 = "tile.addptr"(%18, %19) : (tensor<4x1024x!tile.ptr<f32>>, tensor<4x1024xi32>) -> tensor<4x1024x!tile.ptr<f32>>
  %21 = "tile.reduce"(%11) {axis = 1 : i64, kind = "max"} : (tensor<4x1024xf32>) -> tensor<4xf32>
  %22 = "tile.expand_dims"(%21) {axis = 1 : i64} : (tensor<4xf32>) -> tensor<4x1xf32>
  %23 = "tile.broadcast"(%22) : (tensor<4x1xf32>) -> tensor<4x1024xf32>
  %24 = arith.subf %11, %23 : tensor<4x1024xf32>
  "tile.store"(%20, %24) : (tensor<4x1024x!tile.ptr<f32>>, tensor<4x1024xf32>) -> ()
  return
}
