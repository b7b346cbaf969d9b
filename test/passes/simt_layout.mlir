// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout)' | FileCheck %s

// One thread per 8 elements of the largest tile (1024 -> 128 threads); every tile
// gets the blocked layout of its element count: <vec, owning threads, registers>.
// CHECK-LABEL: func.func @vadd
// CHECK-SAME: simt.num_threads = 128 : i32
// CHECK: "tile.arange"() {{.*}}simt.layout = "blocked<4, 128, 8>"
// A 16-element tile is replicated: 4 owning threads hold 4 registers each.
// CHECK: "tile.arange"() {{.*}}simt.layout = "blocked<4, 4, 4>"
func.func @vadd(%x: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 1024 : i64} : () -> tensor<1024xi32>
  %s = "tile.arange"() {start = 0 : i64, end = 16 : i64} : () -> tensor<16xi32>
  %p = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<1024x!tile.ptr<f32>>
  %a = "tile.addptr"(%p, %r) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f32>>
  %v = "tile.load"(%a) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<1024x!tile.ptr<f32>>) -> tensor<1024xf32>
  "tile.store"(%a, %v) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xf32>) -> ()
  %p2 = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<16x!tile.ptr<f32>>
  %a2 = "tile.addptr"(%p2, %s) : (tensor<16x!tile.ptr<f32>>, tensor<16xi32>) -> tensor<16x!tile.ptr<f32>>
  %v2 = "tile.load"(%a2) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<16x!tile.ptr<f32>>) -> tensor<16xf32>
  "tile.store"(%a2, %v2) : (tensor<16x!tile.ptr<f32>>, tensor<16xf32>) -> ()
  return
}
