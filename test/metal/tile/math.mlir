// Tile-IR math through the whole Metal pipeline (tile IR -> SIMT with simt.target = "metal" -> MSL):
// each function is Metal's own (`precise::` for float, IEEE-accurate), erf is a formula over
// precise::exp, fmod is fmod, and f16 math is computed in float and rounded back to half.
// CHECK-NOT: asm
// CHECK-LABEL: kernel void math_msl(
// CHECK:       precise::exp(
// CHECK:       precise::exp2(
// CHECK:       precise::log(
// CHECK:       precise::log2(
// CHECK:       precise::sin(
// CHECK:       precise::cos(
// CHECK:       precise::tanh(
// CHECK:       precise::pow(
// CHECK:       precise::sqrt(
// CHECK:       precise::rsqrt(
// CHECK:       metal::floor(
// CHECK:       metal::ceil(
// CHECK:       metal::fma(
// CHECK:       fmod(
// CHECK:       float [[AX:v[0-9]+]] = metal::fabs([[X:r[0-9]+]]);
// CHECK:       float [[SQ:v[0-9]+]] = ([[AX]] * [[AX]]);
// CHECK:       float [[NEG:v[0-9]+]] = (-[[SQ]]);
// CHECK:       float {{v[0-9]+}} = precise::exp([[NEG]]);
// CHECK:       float [[W:v[0-9]+]] = float({{r[0-9]+}});
// CHECK-NEXT:  float [[E:v[0-9]+]] = precise::exp([[W]]);
// CHECK-NEXT:  half {{v[0-9]+}} = half([[E]]);
// CHECK-NOT:   asm
func.func @math_msl(%x: !tile.ptr<f32>, %o: !tile.ptr<f32>, %h: !tile.ptr<f16>) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 128 : i64} : () -> tensor<128xi32>
  %p = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
  %pa = "tile.addptr"(%p, %r) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
  %v = "tile.load"(%pa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<128x!tile.ptr<f32>>) -> tensor<128xf32>
  %f1 = math.exp %v : tensor<128xf32>
  %f2 = math.exp2 %v : tensor<128xf32>
  %f3 = math.log %v : tensor<128xf32>
  %f4 = math.log2 %v : tensor<128xf32>
  %f5 = math.sin %v : tensor<128xf32>
  %f6 = math.cos %v : tensor<128xf32>
  %f7 = math.tanh %v : tensor<128xf32>
  %f8 = math.powf %v, %v : tensor<128xf32>
  %f9 = math.sqrt %v : tensor<128xf32>
  %f10 = math.rsqrt %v : tensor<128xf32>
  %f11 = math.floor %v : tensor<128xf32>
  %f12 = math.ceil %v : tensor<128xf32>
  %f13 = math.fma %v, %v, %v : tensor<128xf32>
  %three = arith.constant dense<3.0> : tensor<128xf32>
  %f14 = arith.remf %v, %three : tensor<128xf32>
  %f15 = math.erf %v : tensor<128xf32>
  %s1 = arith.addf %f1, %f2 : tensor<128xf32>
  %s2 = arith.addf %s1, %f3 : tensor<128xf32>
  %s3 = arith.addf %s2, %f4 : tensor<128xf32>
  %s4 = arith.addf %s3, %f5 : tensor<128xf32>
  %s5 = arith.addf %s4, %f6 : tensor<128xf32>
  %s6 = arith.addf %s5, %f7 : tensor<128xf32>
  %s7 = arith.addf %s6, %f8 : tensor<128xf32>
  %s8 = arith.addf %s7, %f9 : tensor<128xf32>
  %s9 = arith.addf %s8, %f10 : tensor<128xf32>
  %s10 = arith.addf %s9, %f11 : tensor<128xf32>
  %s11 = arith.addf %s10, %f12 : tensor<128xf32>
  %s12 = arith.addf %s11, %f13 : tensor<128xf32>
  %s13 = arith.addf %s12, %f14 : tensor<128xf32>
  %s14 = arith.addf %s13, %f15 : tensor<128xf32>
  %q = "tile.splat"(%o) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
  %qa = "tile.addptr"(%q, %r) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
  "tile.store"(%qa, %s14) : (tensor<128x!tile.ptr<f32>>, tensor<128xf32>) -> ()
  %ph = "tile.splat"(%h) : (!tile.ptr<f16>) -> tensor<128x!tile.ptr<f16>>
  %pha = "tile.addptr"(%ph, %r) : (tensor<128x!tile.ptr<f16>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f16>>
  %vh = "tile.load"(%pha) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<128x!tile.ptr<f16>>) -> tensor<128xf16>
  %eh = math.exp %vh : tensor<128xf16>
  "tile.store"(%pha, %eh) : (tensor<128x!tile.ptr<f16>>, tensor<128xf16>) -> ()
  return
}
