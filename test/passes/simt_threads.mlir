// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-simt)' | FileCheck %s

// A SIMT kernel on CUDA: one thread per tile.thread_id, the shared array a workgroup buffer,
// the barrier gpu.barrier, every thread storing for itself (no thread-0 guard).
// CHECK-LABEL: gpu.func @reverse
// CHECK-SAME: workgroup(%{{.*}}: memref<64xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME: known_block_size = array<i32: 64, 1, 1>
// CHECK: gpu.thread_id x
// CHECK: memref.store {{.*}} : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK: gpu.barrier
// CHECK: memref.load {{.*}} : memref<64xf32, #gpu.address_space<workgroup>>
// CHECK-NOT: scf.if
// CHECK: llvm.store
func.func @reverse(%x: !tile.ptr<f32>, %n: i32, %out: !tile.ptr<f32>) attributes {tile.kernel, tile.threads = 64 : i64} {
  %buf = "tile.alloc"() {space = "shared"} : () -> memref<64xf32>
  %t = "tile.thread_id"() : () -> i32
  %p = "tile.addptr"(%x, %t) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  %v = "tile.load"(%p) {operandSegmentSizes = array<i32: 1, 0, 0>} : (!tile.ptr<f32>) -> f32
  %i = arith.index_cast %t : i32 to index
  memref.store %v, %buf[%i] : memref<64xf32>
  "tile.barrier"() : () -> ()
  %c63 = arith.constant 63 : i32
  %r = arith.subi %c63, %t : i32
  %ri = arith.index_cast %r : i32 to index
  %w = memref.load %buf[%ri] : memref<64xf32>
  %q = "tile.addptr"(%out, %t) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  "tile.store"(%q, %w) : (!tile.ptr<f32>, f32) -> ()
  return
}
