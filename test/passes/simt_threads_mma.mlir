// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-simt)' | FileCheck %s

// A SIMD-group sum is five xor-shuffle steps; an f16 MMA is one tensor-core mma.sync.m16n8k8.
// CHECK-LABEL: gpu.func @reduce_mma
// CHECK-COUNT-5: gpu.shuffle xor
// CHECK: mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32
func.func @reduce_mma(%x: !tile.ptr<f32>, %a: !tile.ptr<f16>, %out: !tile.ptr<f32>) attributes {tile.kernel, tile.threads = 32 : i64} {
  %t = "tile.thread_id"() : () -> i32
  %p = "tile.addptr"(%x, %t) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  %v = "tile.load"(%p) {operandSegmentSizes = array<i32: 1, 0, 0>} : (!tile.ptr<f32>) -> f32
  %s = "tile.simd_reduce"(%v) {kind = "sum"} : (f32) -> f32
  %c0 = arith.constant 0 : i32
  %c8 = arith.constant 8 : i32
  %z = arith.constant 0.0 : f32
  %acc = "tile.simd_fill"(%z) : (f32) -> tensor<8x8xf32>
  %m = "tile.simd_load"(%a, %c0, %c8) : (!tile.ptr<f16>, i32, i32) -> tensor<8x8xf16>
  %d = "tile.simd_mma"(%acc, %m, %m) : (tensor<8x8xf32>, tensor<8x8xf16>, tensor<8x8xf16>) -> tensor<8x8xf32>
  "tile.simd_store"(%d, %out, %c0, %c8) : (tensor<8x8xf32>, !tile.ptr<f32>, i32, i32) -> ()
  %q = "tile.addptr"(%out, %t) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  "tile.store"(%q, %s) : (!tile.ptr<f32>, f32) -> ()
  return
}
