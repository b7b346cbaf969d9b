// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-vector,canonicalize,cse)' | FileCheck %s

// scf.for / scf.if are rebuilt with converted types; a loop-carried pointer is
// an index offset from its kernel argument; a masked scalar load runs under scf.if.
// CHECK-LABEL: func.func @walk
// CHECK: scf.for {{.*}} iter_args(%{{.*}} = %{{.*}}, %{{.*}} = %{{.*}}) -> (index, f32) : i32
// CHECK: scf.if {{.*}} -> (f32)
// CHECK: memref.load {{.*}} : memref<?xf32>
// CHECK: } else {
// CHECK: arith.addi {{.*}} : index
func.func @walk(%p: !tile.ptr<f32>, %n: i32, %out: !tile.ptr<f32>) attributes {tile.kernel} {
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %z = arith.constant 0.0 : f32
  %r:2 = scf.for %i = %c0 to %n step %c1 iter_args(%q = %p, %acc = %z) -> (!tile.ptr<f32>, f32) : i32 {
    %odd = arith.andi %i, %c1 : i32
    %m = arith.cmpi eq, %odd, %c1 : i32
    %v = "tile.load"(%q, %m) {operandSegmentSizes = array<i32: 1, 1, 0>} : (!tile.ptr<f32>, i1) -> f32
    %a = arith.addf %acc, %v : f32
    %q2 = "tile.addptr"(%q, %c1) : (!tile.ptr<f32>, i32) -> !tile.ptr<f32>
    scf.yield %q2, %a : !tile.ptr<f32>, f32
  }
  "tile.store"(%out, %r#1) : (!tile.ptr<f32>, f32) -> ()
  return
}
