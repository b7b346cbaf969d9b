// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// A difference of two dot results stays in the tensor-core fragment layout on CUDA, as a + b * -1:
// the NVVM lowering of gpu.subgroup_mma_elementwise has no subf (it aborts on one).
// CHECK: gpu.func @dot_difference
// CHECK: gpu.subgroup_mma_compute
// CHECK: gpu.subgroup_mma_constant_matrix {{.*}} : !gpu.mma_matrix<16x16xf32, "COp">
// CHECK: gpu.subgroup_mma_elementwise  mulf
// CHECK: gpu.subgroup_mma_elementwise  addf
// CHECK-NOT: gpu.subgroup_mma_elementwise  subf
// CHECK: gpu.subgroup_mma_store_matrix
func.func @dot_difference(%a: !tile.ptr<f16>, %c: !tile.ptr<f32>) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 1024 : i64} : () -> tensor<1024xi32>
  %p = "tile.splat"(%a) : (!tile.ptr<f16>) -> tensor<1024x!tile.ptr<f16>>
  %pa = "tile.addptr"(%p, %r) : (tensor<1024x!tile.ptr<f16>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f16>>
  %v = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<1024x!tile.ptr<f16>>) -> tensor<1024xf16>
  %m = "tile.reshape"(%v) : (tensor<1024xf16>) -> tensor<32x32xf16>
  %z = arith.constant dense<0.0> : tensor<32x32xf32>
  %d = "tile.dot"(%m, %m, %z) : (tensor<32x32xf16>, tensor<32x32xf16>, tensor<32x32xf32>) -> tensor<32x32xf32>
  %e = "tile.dot"(%m, %m, %d) : (tensor<32x32xf16>, tensor<32x32xf16>, tensor<32x32xf32>) -> tensor<32x32xf32>
  %s = arith.subf %e, %d : tensor<32x32xf32>
  %f = "tile.reshape"(%s) : (tensor<32x32xf32>) -> tensor<1024xf32>
  %q = "tile.splat"(%c) : (!tile.ptr<f32>) -> tensor<1024x!tile.ptr<f32>>
  %qa = "tile.addptr"(%q, %r) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f32>>
  "tile.store"(%qa, %f) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xf32>) -> ()
  return
}
