// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// f32 tile_dot for Metal (simt.target = "metal"): 8x8 simdgroup-matrix fragments. The K loop
// carries the 32x32 accumulator as fragments (16 of them over 4 SIMD-groups: 4 per thread);
// a (32x16) and the untransposed source of b = trans(x) (x: 32x16) are staged in workgroup
// memory with 4 floats of padding per row (32x20 = 640 f32 each), b read with `transpose`;
// each SIMD-group runs 4 fragments x 2 K-steps of 8x8x8 multiply-accumulates; no element-wise
// dot loop and no 16x16 (WMMA) fragments; the result leaves the fragments through workgroup
// memory for the store.
// CHECK: gpu.func @dot_f32
// CHECK-SAME: workgroup({{.*}} : memref<640xf32, #gpu.address_space<workgroup>>, {{.*}} : memref<640xf32, #gpu.address_space<workgroup>>, {{.*}} : memref<1024xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME: known_block_size = array<i32: 128, 1, 1>
// CHECK-NOT: 16x16
// CHECK-NOT: vector<8x
// CHECK: [[ZERO:%.*]] = gpu.subgroup_mma_constant_matrix {{.*}} : !gpu.mma_matrix<8x8xf32, "COp">
// CHECK: scf.for {{.*}} iter_args({{%[^ ]+}} = [[ZERO]], {{%[^ ]+}} = [[ZERO]], {{%[^ ]+}} = [[ZERO]], {{%[^ ]+}} = [[ZERO]])
// CHECK-SAME: -> (!gpu.mma_matrix<8x8xf32, "COp">, !gpu.mma_matrix<8x8xf32, "COp">, !gpu.mma_matrix<8x8xf32, "COp">, !gpu.mma_matrix<8x8xf32, "COp">)
// CHECK: gpu.barrier
// CHECK: vector.store {{.*}} : memref<640xf32, #gpu.address_space<workgroup>>, vector<4xf32>
// CHECK: gpu.barrier
// CHECK: gpu.subgroup_mma_load_matrix {{.*}} {leadDimension = 20 : index} : memref<640xf32, #gpu.address_space<workgroup>> -> !gpu.mma_matrix<8x8xf32, "AOp">
// CHECK: gpu.subgroup_mma_load_matrix {{.*}} {leadDimension = 20 : index, transpose} : memref<640xf32, #gpu.address_space<workgroup>> -> !gpu.mma_matrix<8x8xf32, "BOp">
// CHECK: gpu.subgroup_mma_compute {{.*}} : !gpu.mma_matrix<8x8xf32, "AOp">, !gpu.mma_matrix<8x8xf32, "BOp"> -> !gpu.mma_matrix<8x8xf32, "COp">
// CHECK-COUNT-7: gpu.subgroup_mma_compute
// CHECK-NOT: gpu.subgroup_mma_compute
// CHECK-NOT: scf.for
// CHECK: scf.yield {{.*}} : !gpu.mma_matrix<8x8xf32, "COp">, !gpu.mma_matrix<8x8xf32, "COp">, !gpu.mma_matrix<8x8xf32, "COp">, !gpu.mma_matrix<8x8xf32, "COp">
// CHECK-COUNT-4: gpu.subgroup_mma_store_matrix {{.*}} {leadDimension = 32 : index} : !gpu.mma_matrix<8x8xf32, "COp">, memref<1024xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: llvm.store
func.func @dot_f32(%a: !tile.ptr<f32>, %b: !tile.ptr<f32>, %c: !tile.ptr<f32>, %n: i32) attributes {tile.kernel, simt.target = "metal"} {
  %r = "tile.arange"() {start = 0 : i64, end = 512 : i64} : () -> tensor<512xi32>
  %pa = "tile.splat"(%a) : (!tile.ptr<f32>) -> tensor<512x!tile.ptr<f32>>
  %pb = "tile.splat"(%b) : (!tile.ptr<f32>) -> tensor<512x!tile.ptr<f32>>
  %z = arith.constant dense<0.0> : tensor<32x32xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %acc = scf.for %k = %c0 to %n step %c1 iter_args(%s = %z) -> (tensor<32x32xf32>) : i32 {
    %off = "tile.splat"(%k) : (i32) -> tensor<512xi32>
    %o = arith.addi %r, %off : tensor<512xi32>
    %qa = "tile.addptr"(%pa, %o) : (tensor<512x!tile.ptr<f32>>, tensor<512xi32>) -> tensor<512x!tile.ptr<f32>>
    %qb = "tile.addptr"(%pb, %o) : (tensor<512x!tile.ptr<f32>>, tensor<512xi32>) -> tensor<512x!tile.ptr<f32>>
    %va = "tile.load"(%qa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<512x!tile.ptr<f32>>) -> tensor<512xf32>
    %vb = "tile.load"(%qb) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<512x!tile.ptr<f32>>) -> tensor<512xf32>
    %ma = "tile.reshape"(%va) : (tensor<512xf32>) -> tensor<32x16xf32>
    %mb = "tile.reshape"(%vb) : (tensor<512xf32>) -> tensor<32x16xf32>
    %tb = "tile.trans"(%mb) : (tensor<32x16xf32>) -> tensor<16x32xf32>
    %d = "tile.dot"(%ma, %tb, %s) : (tensor<32x16xf32>, tensor<16x32xf32>, tensor<32x32xf32>) -> tensor<32x32xf32>
    scf.yield %d : tensor<32x32xf32>
  }
  %r2 = "tile.arange"() {start = 0 : i64, end = 1024 : i64} : () -> tensor<1024xi32>
  %f = "tile.reshape"(%acc) : (tensor<32x32xf32>) -> tensor<1024xf32>
  %q = "tile.splat"(%c) : (!tile.ptr<f32>) -> tensor<1024x!tile.ptr<f32>>
  %qc = "tile.addptr"(%q, %r2) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f32>>
  "tile.store"(%qc, %f) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xf32>) -> ()
  return
}
