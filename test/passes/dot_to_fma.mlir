// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-vector,canonicalize,cse)' | FileCheck %s

// A dot in a K loop whose accumulator is yielded straight back keeps the
// accumulator in a stack buffer for the whole loop; each dot is a
// register-blocked micro-kernel of broadcast(a[i,k]) * b[k, :] FMAs.
// CHECK-LABEL: func.func @mm
// CHECK: memref.alloca() {alignment = 64 : i64} : memref<256xf32>
// The transposed operand is staged with shuffles (a 16x16 transpose network).
// CHECK: scf.for
// CHECK-COUNT-64: vector.shuffle
// CHECK: vector.load {{.*}} : memref<256xf32>, vector<16xf32>
// CHECK: vector.broadcast {{.*}} : f32 to vector<16xf32>
// CHECK: vector.fma {{.*}} : vector<16xf32>
// CHECK: vector.store {{.*}} : memref<256xf32>, vector<16xf32>
// After the loop the accumulator is read back from its buffer and stored.
// CHECK: vector.load {{.*}} : memref<256xf32>, vector<16xf32>
// CHECK: vector.store {{.*}} : memref<?xf32>, vector<16xf32>
func.func @mm(%a: !tile.ptr<f32>, %bt: !tile.ptr<f32>, %c: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 16 : i64} : () -> tensor<16xi32>
  %c16 = arith.constant 16 : i32
  %s16 = "tile.splat"(%c16) : (i32) -> tensor<16xi32>
  %rows = arith.muli %r, %s16 : tensor<16xi32>
  %r2 = "tile.expand_dims"(%rows) {axis = 1 : i64} : (tensor<16xi32>) -> tensor<16x1xi32>
  %rb = "tile.broadcast"(%r2) : (tensor<16x1xi32>) -> tensor<16x16xi32>
  %c2 = "tile.expand_dims"(%r) {axis = 0 : i64} : (tensor<16xi32>) -> tensor<1x16xi32>
  %cb = "tile.broadcast"(%c2) : (tensor<1x16xi32>) -> tensor<16x16xi32>
  %off = arith.addi %rb, %cb : tensor<16x16xi32>
  %ap = "tile.splat"(%a) : (!tile.ptr<f32>) -> tensor<16x16x!tile.ptr<f32>>
  %a0 = "tile.addptr"(%ap, %off) : (tensor<16x16x!tile.ptr<f32>>, tensor<16x16xi32>) -> tensor<16x16x!tile.ptr<f32>>
  %bp = "tile.splat"(%bt) : (!tile.ptr<f32>) -> tensor<16x16x!tile.ptr<f32>>
  %b0 = "tile.addptr"(%bp, %off) : (tensor<16x16x!tile.ptr<f32>>, tensor<16x16xi32>) -> tensor<16x16x!tile.ptr<f32>>
  %zero = arith.constant dense<0.0> : tensor<16x16xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %res:3 = scf.for %k = %c0 to %n step %c1 iter_args(%pa = %a0, %pb = %b0, %acc = %zero) -> (tensor<16x16x!tile.ptr<f32>>, tensor<16x16x!tile.ptr<f32>>, tensor<16x16xf32>) : i32 {
    %av = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<16x16x!tile.ptr<f32>>) -> tensor<16x16xf32>
    %bv = "tile.load"(%pb) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<16x16x!tile.ptr<f32>>) -> tensor<16x16xf32>
    %b = "tile.trans"(%bv) : (tensor<16x16xf32>) -> tensor<16x16xf32>
    %d = "tile.dot"(%av, %b, %acc) : (tensor<16x16xf32>, tensor<16x16xf32>, tensor<16x16xf32>) -> tensor<16x16xf32>
    %step = "tile.splat"(%c16) : (i32) -> tensor<16x16xi32>
    %pa2 = "tile.addptr"(%pa, %step) : (tensor<16x16x!tile.ptr<f32>>, tensor<16x16xi32>) -> tensor<16x16x!tile.ptr<f32>>
    %pb2 = "tile.addptr"(%pb, %step) : (tensor<16x16x!tile.ptr<f32>>, tensor<16x16xi32>) -> tensor<16x16x!tile.ptr<f32>>
    scf.yield %pa2, %pb2, %d : tensor<16x16x!tile.ptr<f32>>, tensor<16x16x!tile.ptr<f32>>, tensor<16x16xf32>
  }
  %cp = "tile.splat"(%c) : (!tile.ptr<f32>) -> tensor<16x16x!tile.ptr<f32>>
  %c_0 = "tile.addptr"(%cp, %off) : (tensor<16x16x!tile.ptr<f32>>, tensor<16x16xi32>) -> tensor<16x16x!tile.ptr<f32>>
  "tile.store"(%c_0, %res#2) : (tensor<16x16x!tile.ptr<f32>>, tensor<16x16xf32>) -> ()
  return
}
