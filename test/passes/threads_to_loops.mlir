// RUN: alloy-opt %s --pass-pipeline='builtin.module(threads-to-loops)' | FileCheck %s

// A threadgroup of 64 threads on the CPU: the body is cut at the barrier into two loops over the
// threads; the value made before the barrier and read after it lives in a per-thread stack buffer,
// the shared array in one stack buffer for the program, and thread_id reads the loop counter.
// CHECK-LABEL: func.func @reverse
// CHECK-DAG: %[[SPILL:.*]] = "tile.stack_alloc"() {size = 64 : i64} : () -> !tile.ptr<i32>
// CHECK-DAG: %[[SHARED:.*]] = "tile.stack_alloc"() {size = 64 : i64} : () -> !tile.ptr<f32>
// CHECK: scf.for %[[T0:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[TID0:.*]] = arith.index_cast %[[T0]] : index to i32
// CHECK: "tile.store"({{.*}}) : (!tile.ptr<i32>, i32) -> ()
// CHECK: "tile.load"
// CHECK: "tile.addptr"(%[[SHARED]], %{{.*}})
// CHECK: } {tile.thread_loop}
// CHECK-NOT: tile.barrier
// CHECK: scf.for %[[T1:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[TID1:.*]] = arith.index_cast %[[T1]] : index to i32
// CHECK: "tile.addptr"(%[[SPILL]], %[[TID1]])
// CHECK: } {tile.thread_loop}
// CHECK-NOT: tile.thread_id
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

// A SIMD reduction is a loop of its own over the spilled lanes: a 32-wide tile reduce of the group's.
// CHECK-LABEL: func.func @lanes
// CHECK: } {tile.thread_loop}
// CHECK: scf.for
// CHECK: "tile.arange"() {end = 32 : i64, start = 0 : i64}
// CHECK: "tile.reduce"({{.*}}) {axis = 0 : i64, kind = "max"} : (tensor<32xf32>) -> f32
// CHECK: } {tile.thread_loop}
func.func @lanes(%x: !tile.ptr<f32>, %out: !tile.ptr<f32>) attributes {tile.kernel, tile.threads = 32 : i64} {
  %t = "tile.thread_id"() : () -> i32
  %p = "tile.addptr"(%x, %t) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  %v = "tile.load"(%p) {operandSegmentSizes = array<i32: 1, 0, 0>} : (!tile.ptr<f32>) -> f32
  %m = "tile.simd_reduce"(%v) {kind = "max"} : (f32) -> f32
  %q = "tile.addptr"(%out, %t) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  "tile.store"(%q, %m) : (!tile.ptr<f32>, f32) -> ()
  return
}

// A per-thread pointer carried by a loop around a barrier is carried as its i64 offset from the
// array argument, in a per-thread buffer; the loop itself carries the (uniform) argument.
// CHECK-LABEL: func.func @walk
// CHECK-DAG: %[[OFFS:.*]] = "tile.stack_alloc"() {size = 32 : i64} : () -> !tile.ptr<i64>
// CHECK: scf.for %{{.*}} = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%{{.*}} = %arg0) -> (!tile.ptr<f32>)
// CHECK: "tile.load"(%{{.*}}) {{.*}} : (!tile.ptr<i64>) -> i64
// CHECK: "tile.addptr"(%arg0, %{{.*}}) : (!tile.ptr<f32>, i64) -> !tile.ptr<f32>
// CHECK: } {tile.thread_loop}
// CHECK: scf.yield %{{.*}} : !tile.ptr<f32>
func.func @walk(%x: !tile.ptr<f32>, %out: !tile.ptr<f32>) attributes {tile.kernel, tile.threads = 32 : i64} {
  %t = "tile.thread_id"() : () -> i32
  %p0 = "tile.addptr"(%x, %t) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  %c0 = arith.constant 0 : i32
  %c4 = arith.constant 4 : i32
  %c1 = arith.constant 1 : i32
  %c32 = arith.constant 32 : i32
  %end = scf.for %k = %c0 to %c4 step %c1 iter_args(%p = %p0) -> (!tile.ptr<f32>) : i32 {
    %v = "tile.load"(%p) {operandSegmentSizes = array<i32: 1, 0, 0>} : (!tile.ptr<f32>) -> f32
    "tile.barrier"() : () -> ()
    %q = "tile.addptr"(%out, %t) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
    "tile.store"(%q, %v) : (!tile.ptr<f32>, f32) -> ()
    %next = "tile.addptr"(%p, %c32) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
    scf.yield %next : !tile.ptr<f32>
  }
  return
}
