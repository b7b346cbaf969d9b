// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s
// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s --check-prefix=NOASM

// Math for Metal (simt.target = "metal"): the `math` ops stay (the MSL translator emits Metal's
// functions for them) instead of CUDA's PTX inline assembly; erf, which Metal lacks, is the
// Abramowitz-Stegun formula over math.exp; f16 is widened to f32 and narrowed back; remf stays
// (fmod) and fptosi stays a plain conversion.
// NOASM-NOT: llvm.inline_asm
// CHECK: gpu.func @math_metal
// CHECK: math.exp [[X:%[^ ]+]] : f32
// CHECK: math.log [[X]] : f32
// CHECK: math.sin [[X]] : f32
// CHECK: math.tanh [[X]] : f32
// CHECK: math.powf [[X]], [[X]] : f32
// CHECK: math.sqrt [[X]] : f32
// CHECK: [[AX:%.*]] = math.absf [[X]] : f32
// CHECK: [[SQ:%.*]] = arith.mulf [[AX]], [[AX]] : f32
// CHECK: [[NEG:%.*]] = arith.negf [[SQ]] : f32
// CHECK: math.exp [[NEG]] : f32
// CHECK: arith.cmpf olt, [[X]], {{.*}} : f32
// CHECK: arith.select
// CHECK: arith.remf [[X]], {{.*}} : f32
// CHECK: arith.fptosi {{.*}} : f32 to i32
// CHECK: [[W:%.*]] = arith.extf {{.*}} : f16 to f32
// CHECK: [[E:%.*]] = math.exp [[W]] : f32
// CHECK: arith.truncf [[E]] : f32 to f16
func.func @math_metal(%x: !tile.ptr<f32>, %o: !tile.ptr<f32>, %oi: !tile.ptr<i32>, %h: !tile.ptr<f16>) attributes {tile.kernel, simt.target = "metal"} {
  %r = "tile.arange"() {start = 0 : i64, end = 128 : i64} : () -> tensor<128xi32>
  %p = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
  %pa = "tile.addptr"(%p, %r) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
  %v = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<128x!tile.ptr<f32>>) -> tensor<128xf32>
  %e = math.exp %v : tensor<128xf32>
  %l = math.log %v : tensor<128xf32>
  %s = math.sin %v : tensor<128xf32>
  %t = math.tanh %v : tensor<128xf32>
  %pw = math.powf %v, %v : tensor<128xf32>
  %sq = math.sqrt %v : tensor<128xf32>
  %er = math.erf %v : tensor<128xf32>
  %three = arith.constant dense<3.0> : tensor<128xf32>
  %m = arith.remf %v, %three : tensor<128xf32>
  %a1 = arith.addf %e, %l : tensor<128xf32>
  %a2 = arith.addf %a1, %s : tensor<128xf32>
  %a3 = arith.addf %a2, %t : tensor<128xf32>
  %a4 = arith.addf %a3, %pw : tensor<128xf32>
  %a5 = arith.addf %a4, %sq : tensor<128xf32>
  %a6 = arith.addf %a5, %er : tensor<128xf32>
  %a7 = arith.addf %a6, %m : tensor<128xf32>
  %q = "tile.splat"(%o) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
  %qa = "tile.addptr"(%q, %r) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
  "tile.store"(%qa, %a7) : (tensor<128x!tile.ptr<f32>>, tensor<128xf32>) -> ()
  %i = arith.fptosi %a7 : tensor<128xf32> to tensor<128xi32>
  %qi = "tile.splat"(%oi) : (!tile.ptr<i32>) -> tensor<128x!tile.ptr<i32>>
  %qia = "tile.addptr"(%qi, %r) : (tensor<128x!tile.ptr<i32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<i32>>
  "tile.store"(%qia, %i) : (tensor<128x!tile.ptr<i32>>, tensor<128xi32>) -> ()
  %ph = "tile.splat"(%h) : (!tile.ptr<f16>) -> tensor<128x!tile.ptr<f16>>
  %pha = "tile.addptr"(%ph, %r) : (tensor<128x!tile.ptr<f16>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f16>>
  %vh = "tile.load"(%pha) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<128x!tile.ptr<f16>>) -> tensor<128xf16>
  %eh = math.exp %vh : tensor<128xf16>
  "tile.store"(%pha, %eh) : (tensor<128x!tile.ptr<f16>>, tensor<128xf16>) -> ()
  return
}
