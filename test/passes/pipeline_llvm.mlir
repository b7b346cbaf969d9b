// RUN: alloy-opt %s --pass-pipeline='builtin.module(tile-canonicalize,convert-tile-to-vector,canonicalize,cse,convert-vector-to-scf,lower-affine,convert-scf-to-cf,expand-strided-metadata,convert-math-to-llvm,convert-math-to-libm,convert-vector-to-llvm{reassociate-fp-reductions=1},finalize-memref-to-llvm,convert-ub-to-llvm,convert-arith-to-llvm,convert-func-to-llvm,convert-cf-to-llvm,reconcile-unrealized-casts)' | FileCheck %s

// The whole CPU pipeline reaches the LLVM dialect with the C ABI entry point.
// CHECK: llvm.func @scale(%{{.*}}: !llvm.ptr, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64, %{{.*}}: i64)
// CHECK: llvm.call @scale.program
// CHECK: llvm.func internal @scale.program(%{{.*}}: !llvm.ptr {llvm.noalias}
// f32 exp on a tile is expanded inline (range reduction + polynomial), never a libm call per lane.
// CHECK: llvm.intr.masked.load
// CHECK-NOT: llvm.intr.exp
// CHECK: llvm.intr.floor
// CHECK: llvm.intr.fma
// CHECK: llvm.intr.masked.store
// CHECK-NOT: unrealized_conversion_cast
func.func @scale(%x: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %pid = "tile.program_id"() {axis = 0 : i64} : () -> i32
  %c16 = arith.constant 16 : i32
  %b = arith.muli %pid, %c16 : i32
  %bs = "tile.splat"(%b) : (i32) -> tensor<16xi32>
  %r = "tile.arange"() {start = 0 : i64, end = 16 : i64} : () -> tensor<16xi32>
  %o = arith.addi %bs, %r : tensor<16xi32>
  %ns = "tile.splat"(%n) : (i32) -> tensor<16xi32>
  %m = arith.cmpi slt, %o, %ns : tensor<16xi32>
  %xs = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<16x!tile.ptr<f32>>
  %p = "tile.addptr"(%xs, %o) : (tensor<16x!tile.ptr<f32>>, tensor<16xi32>) -> tensor<16x!tile.ptr<f32>>
  %v = "tile.load"(%p, %m) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<16x!tile.ptr<f32>>, tensor<16xi1>) -> tensor<16xf32>
  %e = math.exp %v : tensor<16xf32>
  "tile.store"(%p, %e, %m) : (tensor<16x!tile.ptr<f32>>, tensor<16xf32>, tensor<16xi1>) -> ()
  return
}
