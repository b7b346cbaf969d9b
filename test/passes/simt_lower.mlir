// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// A row softmax's pieces: the program id is the block id, the contiguous tile
// load is a run-time-checked 16-byte vector load, the whole-tile max is a warp
// butterfly (gpu.shuffle xor) and a cross-warp step through workgroup memory.
// CHECK: module attributes {gpu.container_module}
// CHECK: gpu.module @alloy
// CHECK: gpu.func @rowmax(%{{.*}}: !llvm.ptr<1>, %{{.*}}: !llvm.ptr<1>, %{{.*}}: i32)
// CHECK-SAME: workgroup([[WG:%.*]] : memref<8xf32, #gpu.address_space<workgroup>>)
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 256, 1, 1>, simt.shared_bytes = 32 : i64}
// CHECK: gpu.block_id x
// CHECK: gpu.thread_id x
// CHECK: llvm.load {{.*}} {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
// CHECK-COUNT-5: gpu.shuffle xor
// CHECK: memref.store {{.*}}, [[WG]]
// CHECK: gpu.barrier
// CHECK: memref.load [[WG]]
// CHECK: llvm.store
func.func @rowmax(%x: !tile.ptr<f32>, %o: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %pid = "tile.program_id"() {axis = 0 : i64} : () -> i32
  %row = arith.muli %pid, %n : i32
  %base = "tile.addptr"(%x, %row) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  %r = "tile.arange"() {start = 0 : i64, end = 2048 : i64} : () -> tensor<2048xi32>
  %p = "tile.splat"(%base) : (!tile.ptr<f32>) -> tensor<2048x!tile.ptr<f32>>
  %a = "tile.addptr"(%p, %r) : (tensor<2048x!tile.ptr<f32>>, tensor<2048xi32>) -> tensor<2048x!tile.ptr<f32>>
  %v = "tile.load"(%a) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<2048x!tile.ptr<f32>>) -> tensor<2048xf32>
  %m = "tile.reduce"(%v) {axis = 0 : i64, kind = "max"} : (tensor<2048xf32>) -> f32
  %out = "tile.addptr"(%o, %pid) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  "tile.store"(%out, %m) : (!tile.ptr<f32>, f32) -> ()
  return
}
