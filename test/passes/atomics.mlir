// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-vector,canonicalize,cse)' | FileCheck %s

// Tile atomics run lane by lane under the mask and return the old values.
// CHECK-LABEL: func.func @hist
// CHECK: scf.for {{.*}} iter_args({{.*}}) -> (vector<16xi32>)
// CHECK: scf.if
// CHECK: memref.atomic_rmw addi {{.*}} : (i32, memref<?xi32>) -> i32
// Compare-and-swap is an llvm.cmpxchg on the element's address (float bits as integers).
// CHECK: llvm.cmpxchg {{.*}} acq_rel monotonic : !llvm.ptr, i32
// CHECK: arith.bitcast {{.*}} : i32 to f32
func.func @hist(%h: !tile.ptr<i32>, %idx: !tile.ptr<i32>, %f: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 16 : i64} : () -> tensor<16xi32>
  %ns = "tile.splat"(%n) : (i32) -> tensor<16xi32>
  %m = arith.cmpi slt, %r, %ns : tensor<16xi32>
  %ip = "tile.splat"(%idx) : (!tile.ptr<i32>) -> tensor<16x!tile.ptr<i32>>
  %ia = "tile.addptr"(%ip, %r) : (tensor<16x!tile.ptr<i32>>, tensor<16xi32>) -> tensor<16x!tile.ptr<i32>>
  %b = "tile.load"(%ia, %m) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<16x!tile.ptr<i32>>, tensor<16xi1>) -> tensor<16xi32>
  %hp = "tile.splat"(%h) : (!tile.ptr<i32>) -> tensor<16x!tile.ptr<i32>>
  %ha = "tile.addptr"(%hp, %b) : (tensor<16x!tile.ptr<i32>>, tensor<16xi32>) -> tensor<16x!tile.ptr<i32>>
  %one = arith.constant dense<1> : tensor<16xi32>
  %old = "tile.atomic_rmw"(%ha, %one, %m) {kind = "add"} : (tensor<16x!tile.ptr<i32>>, tensor<16xi32>, tensor<16xi1>) -> tensor<16xi32>
  "tile.store"(%ia, %old, %m) : (tensor<16x!tile.ptr<i32>>, tensor<16xi32>, tensor<16xi1>) -> ()
  %c0 = arith.constant 0.0 : f32
  %c1 = arith.constant 1.0 : f32
  %prev = "tile.atomic_cas"(%f, %c0, %c1) : (!tile.ptr<f32>, f32, f32) -> f32
  %f1 = "tile.addptr"(%f, %n) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
  "tile.store"(%f1, %prev) : (!tile.ptr<f32>, f32) -> ()
  return
}
