// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-simt)' | FileCheck %s

// SIMD-group matrices on Metal: upstream gpu.subgroup_mma ops over a shared array (the MSL
// translator emits simdgroup_load / simdgroup_multiply_accumulate / simdgroup_store); a matrix
// loaded once and used as both operands is loaded in each role.
// CHECK-LABEL: gpu.func @mma
// CHECK: gpu.subgroup_mma_constant_matrix {{.*}} : !gpu.mma_matrix<8x8xf32, "COp">
// CHECK-DAG: gpu.subgroup_mma_load_matrix {{.*}} {leadDimension = 8 : index} : memref<64xf32, #gpu.address_space<workgroup>> -> !gpu.mma_matrix<8x8xf32, "AOp">
// CHECK-DAG: gpu.subgroup_mma_load_matrix {{.*}} {leadDimension = 8 : index} : memref<64xf32, #gpu.address_space<workgroup>> -> !gpu.mma_matrix<8x8xf32, "BOp">
// CHECK: gpu.subgroup_mma_compute
// CHECK: gpu.subgroup_mma_store_matrix {{.*}} {leadDimension = 8 : index}
func.func @mma(%x: !tile.ptr<f32>) attributes {tile.kernel, tile.threads = 32 : i64, simt.target = "metal"} {
  %buf = "tile.alloc"() {space = "shared"} : () -> memref<64xf32>
  %c0 = arith.constant 0 : i32
  %c8 = arith.constant 8 : i32
  %z = arith.constant 0.0 : f32
  %acc = "tile.simd_fill"(%z) : (f32) -> tensor<8x8xf32>
  %m = "tile.simd_load"(%buf, %c0, %c8) : (memref<64xf32>, i32, i32) -> tensor<8x8xf32>
  %d = "tile.simd_mma"(%acc, %m, %m) : (tensor<8x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>) -> tensor<8x8xf32>
  "tile.simd_store"(%d, %buf, %c0, %c8) : (tensor<8x8xf32>, memref<64xf32>, i32, i32) -> ()
  return
}
