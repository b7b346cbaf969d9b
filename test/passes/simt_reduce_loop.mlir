// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// Two row reductions of a [16, 256] tile inside a loop: each has its own workgroup buffer and
// ONE barrier per iteration. The first one's reads are ordered before its next iteration's
// writes by the second one's barrier, and the second one's by the first one's barrier of the
// next iteration, so neither needs a trailing barrier.
// CHECK: gpu.func @loop2
// CHECK-SAME: workgroup([[A:%.*]] : memref<32xf32, #gpu.address_space<workgroup>>, [[B:%.*]] : memref<32xf32, #gpu.address_space<workgroup>>)
// CHECK: scf.for
// CHECK-NOT: gpu.barrier
// CHECK: gpu.shuffle xor {{.*}}, %c16_i32, %c32_i32 : f32
// CHECK: memref.store {{.*}}, [[A]]
// CHECK: gpu.barrier
// CHECK-NOT: gpu.barrier
// CHECK: memref.load [[A]]
// CHECK-NOT: gpu.barrier
// CHECK: memref.store {{.*}}, [[B]]
// CHECK: gpu.barrier
// CHECK-NOT: gpu.barrier
// CHECK: memref.load [[B]]
// CHECK-NOT: gpu.barrier
// CHECK: scf.yield
// CHECK-NOT: gpu.barrier
// CHECK: gpu.return
func.func @loop2(%arg0: !tile.ptr<f32>, %arg1: i32, %arg2: i32, %arg3: !tile.ptr<f32>, %arg4: i32) attributes {tile.kernel} {
  %0 = "tile.arange"() {end = 16 : i64, start = 0 : i64} : () -> tensor<16xi32>
  %cst = arith.constant dense<0.000000e+00> : tensor<16xf32>
  %c0_i32 = arith.constant 0 : i32
  %c256_i32 = arith.constant 256 : i32
  %1 = scf.for %arg5 = %c0_i32 to %arg4 step %c256_i32 iter_args(%arg6 = %cst) -> (tensor<16xf32>)  : i32 {
    %4 = "tile.arange"() {end = 256 : i64, start = 0 : i64} : () -> tensor<256xi32>
    %5 = "tile.splat"(%arg5) : (i32) -> tensor<256xi32>
    %6 = arith.addi %5, %4 : tensor<256xi32>
    %7 = "tile.expand_dims"(%0) {axis = 1 : i64} : (tensor<16xi32>) -> tensor<16x1xi32>
    %8 = "tile.splat"(%arg4) : (i32) -> tensor<16x1xi32>
    %9 = arith.muli %7, %8 : tensor<16x1xi32>
    %10 = "tile.splat"(%arg0) : (!tile.ptr<f32>) -> tensor<16x1x!tile.ptr<f32>>
    %11 = "tile.addptr"(%10, %9) : (tensor<16x1x!tile.ptr<f32>>, tensor<16x1xi32>) -> tensor<16x1x!tile.ptr<f32>>
    %12 = "tile.expand_dims"(%6) {axis = 0 : i64} : (tensor<256xi32>) -> tensor<1x256xi32>
    %13 = "tile.broadcast"(%11) : (tensor<16x1x!tile.ptr<f32>>) -> tensor<16x256x!tile.ptr<f32>>
    %14 = "tile.broadcast"(%12) : (tensor<1x256xi32>) -> tensor<16x256xi32>
    %15 = "tile.addptr"(%13, %14) : (tensor<16x256x!tile.ptr<f32>>, tensor<16x256xi32>) -> tensor<16x256x!tile.ptr<f32>>
    %16 = "tile.load"(%15) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<16x256x!tile.ptr<f32>>) -> tensor<16x256xf32>
    %17 = "tile.reduce"(%16) {axis = 1 : i64, kind = "max"} : (tensor<16x256xf32>) -> tensor<16xf32>
    %18 = "tile.reduce"(%16) {axis = 1 : i64, kind = "sum"} : (tensor<16x256xf32>) -> tensor<16xf32>
    %19 = arith.addf %17, %18 : tensor<16xf32>
    %20 = arith.addf %arg6, %19 : tensor<16xf32>
    scf.yield %20 : tensor<16xf32>
  }
  %2 = "tile.splat"(%arg3) : (!tile.ptr<f32>) -> tensor<16x!tile.ptr<f32>>
  %3 = "tile.addptr"(%2, %0) : (tensor<16x!tile.ptr<f32>>, tensor<16xi32>) -> tensor<16x!tile.ptr<f32>>
  "tile.store"(%3, %1) : (tensor<16x!tile.ptr<f32>>, tensor<16xf32>) -> ()
  return
}
