// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// f16 tile_dot on the tensor cores: the zero accumulator is a constant fragment, a and b are
// staged in workgroup memory between barriers with 8 halves of padding per row (32x40 = 1280
// f16 each, against bank conflicts), each warp runs 16x16x16 WMMA steps along K,
// and the result leaves the accumulator layout through workgroup memory for the store.
// CHECK: gpu.func @dot16
// CHECK-SAME: workgroup({{.*}} : memref<1280xf16, #gpu.address_space<workgroup>>, {{.*}} : memref<1280xf16, #gpu.address_space<workgroup>>
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>, simt.shared_bytes = 9216 : i64}
// CHECK: gpu.subgroup_mma_constant_matrix {{.*}} : !gpu.mma_matrix<16x16xf32, "COp">
// CHECK: gpu.barrier
// CHECK: gpu.barrier
// CHECK-COUNT-2: gpu.subgroup_mma_compute
// CHECK: gpu.subgroup_mma_store_matrix
// CHECK: gpu.barrier
// CHECK: llvm.store
func.func @dot16(%a: !tile.ptr<f16>, %c: !tile.ptr<f32>) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 1024 : i64} : () -> tensor<1024xi32>
  %p = "tile.splat"(%a) : (!tile.ptr<f16>) -> tensor<1024x!tile.ptr<f16>>
  %pa = "tile.addptr"(%p, %r) : (tensor<1024x!tile.ptr<f16>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f16>>
  %v = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<1024x!tile.ptr<f16>>) -> tensor<1024xf16>
  %m = "tile.reshape"(%v) : (tensor<1024xf16>) -> tensor<32x32xf16>
  %z = arith.constant dense<0.0> : tensor<32x32xf32>
  %d = "tile.dot"(%m, %m, %z) : (tensor<32x32xf16>, tensor<32x32xf16>, tensor<32x32xf32>) -> tensor<32x32xf32>
  %f = "tile.reshape"(%d) : (tensor<32x32xf32>) -> tensor<1024xf32>
  %q = "tile.splat"(%c) : (!tile.ptr<f32>) -> tensor<1024x!tile.ptr<f32>>
  %qa = "tile.addptr"(%q, %r) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f32>>
  "tile.store"(%qa, %f) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xf32>) -> ()
  return
}
