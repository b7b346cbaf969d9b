// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// argmax along the rows of a [64, 32] f32 tile: a row is 8 chunks of 4, so 8 neighbouring
// lanes share it and the butterfly has 3 steps (xor 4, 2, 1), each shuffling value and index
// for the thread's 2 rows; equal values keep the lower index (cmpf oeq, cmpi slt). The [64]
// result is laid out over 16 threads, not where the rows were reduced, so the first lane of
// each row (tid & 7 == 0) writes value and index to workgroup memory, one barrier, and each
// thread reads its rows' indices (the values are not needed any more).
// CHECK: gpu.func @rowargmax
// CHECK-SAME: workgroup([[V:%.*]] : memref<64xf32, #gpu.address_space<workgroup>>, [[I:%.*]] : memref<64xi32, #gpu.address_space<workgroup>>)
// CHECK: [[LANE:%.*]] = arith.andi %{{.*}}, %c7_i32 : i32
// CHECK: [[FIRST:%.*]] = arith.cmpi eq, [[LANE]], %c0_i32 : i32
// CHECK-NOT: gpu.barrier
// CHECK: gpu.shuffle xor {{.*}}, %c4_i32, %c32_i32 : f32
// CHECK: gpu.shuffle xor {{.*}}, %c4_i32, %c32_i32 : i32
// CHECK: gpu.shuffle xor {{.*}}, %c4_i32, %c32_i32 : f32
// CHECK: gpu.shuffle xor {{.*}}, %c4_i32, %c32_i32 : i32
// CHECK: arith.cmpf ogt
// CHECK: arith.cmpf oeq
// CHECK: arith.cmpi slt
// CHECK-COUNT-4: gpu.shuffle xor {{.*}}, %c2_i32, %c32_i32
// CHECK-COUNT-4: gpu.shuffle xor {{.*}}, %c1_i32, %c32_i32
// CHECK-NOT: gpu.shuffle
// CHECK: scf.if [[FIRST]]
// CHECK-COUNT-2: memref.store {{.*}}, [[I]]
// CHECK: gpu.barrier
// CHECK-NOT: gpu.barrier
// CHECK: memref.load [[I]]
// CHECK-NOT: gpu.barrier
// CHECK: gpu.return
func.func @rowargmax(%arg0: !tile.ptr<f32>, %arg1: i32, %arg2: i32, %arg3: !tile.ptr<i32>) attributes {tile.kernel} {
  %0 = "tile.arange"() {end = 64 : i64, start = 0 : i64} : () -> tensor<64xi32>
  %1 = "tile.arange"() {end = 32 : i64, start = 0 : i64} : () -> tensor<32xi32>
  %2 = "tile.expand_dims"(%0) {axis = 1 : i64} : (tensor<64xi32>) -> tensor<64x1xi32>
  %c32_i32 = arith.constant 32 : i32
  %3 = "tile.splat"(%c32_i32) : (i32) -> tensor<64x1xi32>
  %4 = arith.muli %2, %3 : tensor<64x1xi32>
  %5 = "tile.splat"(%arg0) : (!tile.ptr<f32>) -> tensor<64x1x!tile.ptr<f32>>
  %6 = "tile.addptr"(%5, %4) : (tensor<64x1x!tile.ptr<f32>>, tensor<64x1xi32>) -> tensor<64x1x!tile.ptr<f32>>
  %7 = "tile.expand_dims"(%1) {axis = 0 : i64} : (tensor<32xi32>) -> tensor<1x32xi32>
  %8 = "tile.broadcast"(%6) : (tensor<64x1x!tile.ptr<f32>>) -> tensor<64x32x!tile.ptr<f32>>
  %9 = "tile.broadcast"(%7) : (tensor<1x32xi32>) -> tensor<64x32xi32>
  %10 = "tile.addptr"(%8, %9) : (tensor<64x32x!tile.ptr<f32>>, tensor<64x32xi32>) -> tensor<64x32x!tile.ptr<f32>>
  %11 = "tile.load"(%10) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<64x32x!tile.ptr<f32>>) -> tensor<64x32xf32>
  %12 = "tile.splat"(%arg3) : (!tile.ptr<i32>) -> tensor<64x!tile.ptr<i32>>
  %13 = "tile.addptr"(%12, %0) : (tensor<64x!tile.ptr<i32>>, tensor<64xi32>) -> tensor<64x!tile.ptr<i32>>
  %14 = "tile.reduce"(%11) {axis = 1 : i64, kind = "argmax"} : (tensor<64x32xf32>) -> tensor<64xi32>
  "tile.store"(%13, %14) : (tensor<64x!tile.ptr<i32>>, tensor<64xi32>) -> ()
  return
}
