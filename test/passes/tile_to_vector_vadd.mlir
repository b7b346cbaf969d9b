// RUN: alloy-opt %s --pass-pipeline='builtin.module(tile-canonicalize,convert-tile-to-vector,canonicalize,cse)' | FileCheck %s

// The entry point of docs/cpu-abi.md: (args, begin, end, g0, g1, g2). It reads each
// argument from its 8-byte slot and calls the program body for each linear id.
// CHECK-LABEL: func.func @vadd(%{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64)
// CHECK-COUNT-3: llvm.load {{.*}} : !llvm.ptr -> !llvm.ptr
// CHECK: llvm.load {{.*}} : !llvm.ptr -> i32
// CHECK: scf.for %[[LIN:.*]] = %{{.*}} to %{{.*}} step %{{.*}} : i64
// CHECK: arith.remui %[[LIN]]
// CHECK: func.call @vadd.program
// The body: pointer arguments are noalias and viewed as memrefs of their raw address.
// CHECK-LABEL: func.func private @vadd.program(%{{.*}}: !llvm.ptr {llvm.noalias}
// CHECK-COUNT-3: unrealized_conversion_cast {{.*}} to memref<?xf32>
// 128-lane tiles run as a loop over 16-lane chunks (see stripmine.mlir); contiguous
// masked accesses become masked vector loads/stores (masked-off lanes read 0).
// CHECK: scf.for
// CHECK: arith.cmpi slt, {{.*}} : vector<16xi32>
// CHECK: vector.maskedload {{.*}} : memref<?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
// CHECK: vector.maskedload
// CHECK: arith.addf {{.*}} fastmath<contract> : vector<16xf32>
// CHECK: vector.maskedstore {{.*}} : memref<?xf32>, vector<16xi1>, vector<16xf32>
// CHECK-NOT: vector.gather
module {
  func.func @vadd(%arg0: !tile.ptr<f32>, %arg1: !tile.ptr<f32>, %arg2: !tile.ptr<f32>, %arg3: i32) attributes {tile.kernel} {
    %0 = "tile.program_id"() {axis = 0 : i64} : () -> i32
    %c128_i32 = arith.constant 128 : i32
    %1 = arith.muli %0, %c128_i32 : i32
    %2 = "tile.splat"(%1) : (i32) -> tensor<128xi32>
    %3 = "tile.arange"() {end = 128 : i64, start = 0 : i64} : () -> tensor<128xi32>
    %4 = arith.addi %2, %3 : tensor<128xi32>
    %5 = "tile.splat"(%arg3) : (i32) -> tensor<128xi32>
    %6 = arith.cmpi slt, %4, %5 : tensor<128xi32>
    %7 = "tile.splat"(%arg0) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
    %8 = "tile.addptr"(%7, %4) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
    %9 = "tile.load"(%8, %6) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<128x!tile.ptr<f32>>, tensor<128xi1>) -> tensor<128xf32>
    %10 = "tile.splat"(%arg1) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
    %11 = "tile.addptr"(%10, %4) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
    %cst = arith.constant 0.000000e+00 : f32
    %12 = "tile.splat"(%cst) : (f32) -> tensor<128xf32>
    %13 = "tile.load"(%11, %6, %12) {operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<128x!tile.ptr<f32>>, tensor<128xi1>, tensor<128xf32>) -> tensor<128xf32>
    %14 = arith.addf %9, %13 : tensor<128xf32>
    %15 = "tile.splat"(%arg2) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
    %16 = "tile.addptr"(%15, %4) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
    "tile.store"(%16, %14, %6) : (tensor<128x!tile.ptr<f32>>, tensor<128xf32>, tensor<128xi1>) -> ()
    return
  }
}
