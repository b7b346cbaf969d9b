// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// f16 tile_dot for Metal (simt.target = "metal"). Metal's simdgroup multiply-accumulate takes one
// element type for A, B and C, so f16 x f16 -> f32 stages a and b widened to f32 (arith.extf while
// staging, 32x20 = 640 f32 each) and multiplies 8x8 f32 fragments; f16 x f16 -> f16 stays in half
// (32x24 = 768 f16, 8 halves of padding per row). Arithmetic on a dot result (`d + d`) has no
// simdgroup-matrix form: the fragments go to the blocked layout through workgroup memory first.
// Global f16 loads are 4-wide (8 bytes): MSL has no 8-element vectors.
// CHECK: gpu.func @dot_f16
// CHECK-SAME: memref<640xf32, #gpu.address_space<workgroup>>
// CHECK-SAME: memref<768xf16, #gpu.address_space<workgroup>>
// CHECK-NOT: 16x16
// CHECK-NOT: vector<8xf16>
// CHECK: llvm.load {{.*}} {alignment = 8 : i64} : !llvm.ptr<1> -> vector<4xf16>
// CHECK: arith.extf {{.*}} : f16 to f32
// CHECK: vector.store {{.*}} : memref<640xf32, #gpu.address_space<workgroup>>, vector<4xf32>
// CHECK: gpu.subgroup_mma_load_matrix {{.*}} {leadDimension = 20 : index} : memref<640xf32, #gpu.address_space<workgroup>> -> !gpu.mma_matrix<8x8xf32, "AOp">
// CHECK: gpu.subgroup_mma_load_matrix {{.*}} {leadDimension = 36 : index} : memref<{{[0-9]+}}xf32, #gpu.address_space<workgroup>> -> !gpu.mma_matrix<8x8xf32, "BOp">
// CHECK: gpu.subgroup_mma_compute {{.*}} : !gpu.mma_matrix<8x8xf32, "AOp">, !gpu.mma_matrix<8x8xf32, "BOp"> -> !gpu.mma_matrix<8x8xf32, "COp">
// CHECK-NOT: gpu.subgroup_mma_elementwise
// CHECK: gpu.subgroup_mma_store_matrix {{.*}} : !gpu.mma_matrix<8x8xf32, "COp">, memref<1024xf32, #gpu.address_space<workgroup>>
// CHECK: arith.addf {{.*}} : f32
// CHECK: vector.store {{.*}} : memref<768xf16, #gpu.address_space<workgroup>>, vector<4xf16>
// CHECK: gpu.subgroup_mma_load_matrix {{.*}} {leadDimension = 24 : index} : memref<768xf16, #gpu.address_space<workgroup>> -> !gpu.mma_matrix<8x8xf16, "AOp">
// CHECK: gpu.subgroup_mma_compute {{.*}} : !gpu.mma_matrix<8x8xf16, "AOp">, !gpu.mma_matrix<8x8xf16, "BOp"> -> !gpu.mma_matrix<8x8xf16, "COp">
// CHECK: gpu.subgroup_mma_store_matrix {{.*}} : !gpu.mma_matrix<8x8xf16, "COp">, memref<1024xf16, #gpu.address_space<workgroup>>
func.func @dot_f16(%a: !tile.ptr<f16>, %c: !tile.ptr<f32>, %h: !tile.ptr<f16>) attributes {tile.kernel, simt.target = "metal"} {
  %r = "tile.arange"() {start = 0 : i64, end = 512 : i64} : () -> tensor<512xi32>
  %p = "tile.splat"(%a) : (!tile.ptr<f16>) -> tensor<512x!tile.ptr<f16>>
  %pa = "tile.addptr"(%p, %r) : (tensor<512x!tile.ptr<f16>>, tensor<512xi32>) -> tensor<512x!tile.ptr<f16>>
  %v = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<512x!tile.ptr<f16>>) -> tensor<512xf16>
  %ma = "tile.reshape"(%v) : (tensor<512xf16>) -> tensor<32x16xf16>
  %mb = "tile.reshape"(%v) : (tensor<512xf16>) -> tensor<16x32xf16>
  %z = arith.constant dense<0.0> : tensor<32x32xf32>
  %d = "tile.dot"(%ma, %mb, %z) : (tensor<32x16xf16>, tensor<16x32xf16>, tensor<32x32xf32>) -> tensor<32x32xf32>
  %s = arith.addf %d, %d : tensor<32x32xf32>
  %r2 = "tile.arange"() {start = 0 : i64, end = 1024 : i64} : () -> tensor<1024xi32>
  %f = "tile.reshape"(%s) : (tensor<32x32xf32>) -> tensor<1024xf32>
  %q = "tile.splat"(%c) : (!tile.ptr<f32>) -> tensor<1024x!tile.ptr<f32>>
  %qc = "tile.addptr"(%q, %r2) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f32>>
  "tile.store"(%qc, %f) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xf32>) -> ()
  %zh = arith.constant dense<0.0> : tensor<32x32xf16>
  %dh = "tile.dot"(%ma, %mb, %zh) : (tensor<32x16xf16>, tensor<16x32xf16>, tensor<32x32xf16>) -> tensor<32x32xf16>
  %fh = "tile.reshape"(%dh) : (tensor<32x32xf16>) -> tensor<1024xf16>
  %qh = "tile.splat"(%h) : (!tile.ptr<f16>) -> tensor<1024x!tile.ptr<f16>>
  %qhc = "tile.addptr"(%qh, %r2) : (tensor<1024x!tile.ptr<f16>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f16>>
  "tile.store"(%qhc, %fh) : (tensor<1024x!tile.ptr<f16>>, tensor<1024xf16>) -> ()
  return
}
