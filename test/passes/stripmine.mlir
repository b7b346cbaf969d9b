// RUN: alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-vector,canonicalize,cse)' | FileCheck %s

// Ops on 1-D tiles of 256 lanes run as loops over 16-lane chunks. The max
// reduction ends the first loop (its accumulator is an iter_arg, finished by one
// vector.reduction); x crosses into the second loop through a stack buffer.
// CHECK-LABEL: func.func private @rowmax.program
// CHECK: %[[BUF:.*]] = memref.alloca() {alignment = 64 : i64} : memref<256xf32>
// CHECK: %[[ACC:.*]] = scf.for %[[C:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[A:.*]] = %{{.*}}) -> (vector<16xf32>)
// CHECK: vector.maskedload {{.*}} : memref<?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
// CHECK: vector.store {{.*}}, %[[BUF]][%[[C]]] : memref<256xf32>, vector<16xf32>
// CHECK: arith.maximumf %[[A]], {{.*}} : vector<16xf32>
// CHECK: } {llvm.loop_annotation
// CHECK: vector.reduction <maximumf>, %[[ACC]] : vector<16xf32> into f32
// The mask and pointers are recomputed in the second loop, x is read from the buffer.
// CHECK: scf.for %[[C2:.*]] = %{{.*}} to
// CHECK: vector.load %[[BUF]][%[[C2]]]
// CHECK: arith.cmpi slt
// CHECK: arith.subf {{.*}} : vector<16xf32>
// CHECK: vector.maskedstore {{.*}} : memref<?xf32>, vector<16xi1>, vector<16xf32>
func.func @rowmax(%x: !tile.ptr<f32>, %o: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 256 : i64} : () -> tensor<256xi32>
  %ns = "tile.splat"(%n) : (i32) -> tensor<256xi32>
  %m = arith.cmpi slt, %r, %ns : tensor<256xi32>
  %xs = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<256x!tile.ptr<f32>>
  %xp = "tile.addptr"(%xs, %r) : (tensor<256x!tile.ptr<f32>>, tensor<256xi32>) -> tensor<256x!tile.ptr<f32>>
  %v = "tile.load"(%xp, %m) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<256x!tile.ptr<f32>>, tensor<256xi1>) -> tensor<256xf32>
  %mx = "tile.reduce"(%v) {axis = 0 : i64, kind = "max"} : (tensor<256xf32>) -> f32
  %mxs = "tile.splat"(%mx) : (f32) -> tensor<256xf32>
  %d = arith.subf %v, %mxs : tensor<256xf32>
  %os = "tile.splat"(%o) : (!tile.ptr<f32>) -> tensor<256x!tile.ptr<f32>>
  %op = "tile.addptr"(%os, %r) : (tensor<256x!tile.ptr<f32>>, tensor<256xi32>) -> tensor<256x!tile.ptr<f32>>
  "tile.store"(%op, %d, %m) : (tensor<256x!tile.ptr<f32>>, tensor<256xf32>, tensor<256xi1>) -> ()
  return
}

// 2-D tiles run row by row: a [1, C] broadcast is the row itself, an [R, 1]
// broadcast splats element r; a sum along axis 1 inserts one scalar per row.
// CHECK-LABEL: func.func private @rows.program
// CHECK: scf.for %[[R:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[S:.*]] = %{{.*}}) -> (vector<8xf32>)
// CHECK: vector.extract %{{.*}}[%[[R]]] : f32 from vector<8xf32>
// CHECK: math.exp {{.*}} : vector<32xf64>
// CHECK: vector.store {{.*}} : memref<?xf64>, vector<32xf64>
// CHECK: vector.reduction <add>, {{.*}} : vector<32xf32> into f32
// CHECK: vector.insert {{.*}}, %[[S]] [%[[R]]] : f32 into vector<8xf32>
// CHECK: } {llvm.loop_annotation
func.func @rows(%a: !tile.ptr<f32>, %b: !tile.ptr<f32>, %o: !tile.ptr<f64>, %s: !tile.ptr<f32>) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 8 : i64} : () -> tensor<8xi32>
  %c = "tile.arange"() {start = 0 : i64, end = 32 : i64} : () -> tensor<32xi32>
  %ap = "tile.splat"(%a) : (!tile.ptr<f32>) -> tensor<8x!tile.ptr<f32>>
  %aa = "tile.addptr"(%ap, %r) : (tensor<8x!tile.ptr<f32>>, tensor<8xi32>) -> tensor<8x!tile.ptr<f32>>
  %av = "tile.load"(%aa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<8x!tile.ptr<f32>>) -> tensor<8xf32>
  %bp = "tile.splat"(%b) : (!tile.ptr<f32>) -> tensor<32x!tile.ptr<f32>>
  %ba = "tile.addptr"(%bp, %c) : (tensor<32x!tile.ptr<f32>>, tensor<32xi32>) -> tensor<32x!tile.ptr<f32>>
  %bv = "tile.load"(%ba) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<32x!tile.ptr<f32>>) -> tensor<32xf32>
  %a2 = "tile.expand_dims"(%av) {axis = 1 : i64} : (tensor<8xf32>) -> tensor<8x1xf32>
  %a3 = "tile.broadcast"(%a2) : (tensor<8x1xf32>) -> tensor<8x32xf32>
  %b2 = "tile.expand_dims"(%bv) {axis = 0 : i64} : (tensor<32xf32>) -> tensor<1x32xf32>
  %b3 = "tile.broadcast"(%b2) : (tensor<1x32xf32>) -> tensor<8x32xf32>
  %d = arith.subf %b3, %a3 : tensor<8x32xf32>
  %dd = arith.extf %d : tensor<8x32xf32> to tensor<8x32xf64>
  %e = math.exp %dd : tensor<8x32xf64>
  %c32 = arith.constant 32 : i32
  %s32 = "tile.splat"(%c32) : (i32) -> tensor<8xi32>
  %rs = arith.muli %r, %s32 : tensor<8xi32>
  %r2 = "tile.expand_dims"(%rs) {axis = 1 : i64} : (tensor<8xi32>) -> tensor<8x1xi32>
  %r3 = "tile.broadcast"(%r2) : (tensor<8x1xi32>) -> tensor<8x32xi32>
  %c2 = "tile.expand_dims"(%c) {axis = 0 : i64} : (tensor<32xi32>) -> tensor<1x32xi32>
  %c3 = "tile.broadcast"(%c2) : (tensor<1x32xi32>) -> tensor<8x32xi32>
  %off = arith.addi %r3, %c3 : tensor<8x32xi32>
  %op = "tile.splat"(%o) : (!tile.ptr<f64>) -> tensor<8x32x!tile.ptr<f64>>
  %oa = "tile.addptr"(%op, %off) : (tensor<8x32x!tile.ptr<f64>>, tensor<8x32xi32>) -> tensor<8x32x!tile.ptr<f64>>
  "tile.store"(%oa, %e) : (tensor<8x32x!tile.ptr<f64>>, tensor<8x32xf64>) -> ()
  %sum = "tile.reduce"(%d) {axis = 1 : i64, kind = "sum"} : (tensor<8x32xf32>) -> tensor<8xf32>
  %sp = "tile.splat"(%s) : (!tile.ptr<f32>) -> tensor<8x!tile.ptr<f32>>
  %sa = "tile.addptr"(%sp, %r) : (tensor<8x!tile.ptr<f32>>, tensor<8xi32>) -> tensor<8x!tile.ptr<f32>>
  "tile.store"(%sa, %sum) : (tensor<8x!tile.ptr<f32>>, tensor<8xf32>) -> ()
  return
}

// Rows longer than 256 lanes run in 16-lane pieces: a loop over rows around a loop over the
// pieces of a row; a [1, C] mask is stored once and read piece by piece, and a row sum keeps a
// 16-lane accumulator that is folded into the row's element after the inner loop.
// CHECK-LABEL: func.func private @wide.program
// CHECK: scf.for %[[R:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[S:.*]] = %{{.*}}) -> (vector<2xf32>)
// CHECK: scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[A:.*]] = %{{.*}}) -> (vector<16xf32>)
// CHECK: vector.load %{{.*}}[%[[J]]] : memref<512xi8>, vector<16xi8>
// CHECK-NOT: vector<512xf32>
// CHECK: vector.maskedload {{.*}} : memref<?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
// CHECK-NOT: vector<512xf32>
// CHECK: arith.addf %[[A]], {{.*}} : vector<16xf32>
// CHECK: } {llvm.loop_annotation
// CHECK: vector.reduction <add>, {{.*}} : vector<16xf32> into f32
// CHECK: vector.insert {{.*}}, %[[S]] [%[[R]]] : f32 into vector<2xf32>
func.func @wide(%x: !tile.ptr<f32>, %s: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 2 : i64} : () -> tensor<2xi32>
  %c = "tile.arange"() {start = 0 : i64, end = 512 : i64} : () -> tensor<512xi32>
  %ns = "tile.splat"(%n) : (i32) -> tensor<512xi32>
  %cm = arith.cmpi slt, %c, %ns : tensor<512xi32>
  %cm2 = "tile.expand_dims"(%cm) {axis = 0 : i64} : (tensor<512xi1>) -> tensor<1x512xi1>
  %m = "tile.broadcast"(%cm2) : (tensor<1x512xi1>) -> tensor<2x512xi1>
  %c512 = arith.constant 512 : i32
  %s512 = "tile.splat"(%c512) : (i32) -> tensor<2xi32>
  %rs = arith.muli %r, %s512 : tensor<2xi32>
  %r2 = "tile.expand_dims"(%rs) {axis = 1 : i64} : (tensor<2xi32>) -> tensor<2x1xi32>
  %r3 = "tile.broadcast"(%r2) : (tensor<2x1xi32>) -> tensor<2x512xi32>
  %c2 = "tile.expand_dims"(%c) {axis = 0 : i64} : (tensor<512xi32>) -> tensor<1x512xi32>
  %c3 = "tile.broadcast"(%c2) : (tensor<1x512xi32>) -> tensor<2x512xi32>
  %off = arith.addi %r3, %c3 : tensor<2x512xi32>
  %xp = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<2x512x!tile.ptr<f32>>
  %xa = "tile.addptr"(%xp, %off) : (tensor<2x512x!tile.ptr<f32>>, tensor<2x512xi32>) -> tensor<2x512x!tile.ptr<f32>>
  %v = "tile.load"(%xa, %m) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<2x512x!tile.ptr<f32>>, tensor<2x512xi1>) -> tensor<2x512xf32>
  %e = math.exp %v : tensor<2x512xf32>
  %sum = "tile.reduce"(%e) {axis = 1 : i64, kind = "sum"} : (tensor<2x512xf32>) -> tensor<2xf32>
  %sp = "tile.splat"(%s) : (!tile.ptr<f32>) -> tensor<2x!tile.ptr<f32>>
  %sa = "tile.addptr"(%sp, %r) : (tensor<2x!tile.ptr<f32>>, tensor<2xi32>) -> tensor<2x!tile.ptr<f32>>
  "tile.store"(%sa, %sum) : (tensor<2x!tile.ptr<f32>>, tensor<2xf32>) -> ()
  return
}
