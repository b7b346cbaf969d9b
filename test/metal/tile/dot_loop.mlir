// `acc += tile_dot(a, trans(b))` in a K loop (the frontend's form) through the whole Metal pipeline:
// tile-fold-dot-acc makes the add the dot's accumulator, so the four 8x8 accumulator fragments of
// each SIMD-group are loop-carried `simdgroup_float8x8` values; a and the untransposed b are staged
// in threadgroup memory and b is read with simdgroup_load's transpose flag; there is no
// element-by-element dot loop (the only loop is the K loop).
// CHECK-LABEL: kernel void dot_loop(
// CHECK:       threadgroup float [[A:wg[0-9]+]][640];
// CHECK-NEXT:  threadgroup float [[B:wg[0-9]+]][640];
// CHECK:       simdgroup_float8x8 [[ZERO:v[0-9]+]] = make_filled_simdgroup_matrix<float, 8, 8>({{v[0-9]+}});
// CHECK-NEXT:  simdgroup_float8x8 [[ACC0:r[0-9]+]] = [[ZERO]];
// CHECK-NEXT:  simdgroup_float8x8 [[ACC1:r[0-9]+]] = [[ZERO]];
// CHECK-NEXT:  simdgroup_float8x8 [[ACC2:r[0-9]+]] = [[ZERO]];
// CHECK-NEXT:  simdgroup_float8x8 [[ACC3:r[0-9]+]] = [[ZERO]];
// CHECK-NEXT:  for (int {{i[0-9]+}} = {{v[0-9]+}}; {{i[0-9]+}} < arg3; {{i[0-9]+}} += {{v[0-9]+}}) {
// CHECK-NOT:     for (
// CHECK:         threadgroup_barrier(mem_flags::mem_threadgroup);
// CHECK:         simdgroup_float8x8 [[FA:v[0-9]+]];
// CHECK-NEXT:    simdgroup_load([[FA]], ([[A]] + {{v[0-9]+}}), ulong(20));
// CHECK-NEXT:    simdgroup_float8x8 [[FB:v[0-9]+]];
// CHECK-NEXT:    simdgroup_load([[FB]], ([[B]] + {{v[0-9]+}}), ulong(20), ulong2(0, 0), true);
// CHECK-NEXT:    simdgroup_float8x8 [[D:v[0-9]+]];
// CHECK-NEXT:    simdgroup_multiply_accumulate([[D]], [[FA]], [[FB]], [[ACC0]]);
// CHECK-COUNT-7: simdgroup_multiply_accumulate(
// CHECK-NOT:     simdgroup_multiply_accumulate(
// CHECK:         [[ACC0]] = {{t[0-9]+}};
// CHECK-NEXT:    [[ACC1]] = {{t[0-9]+}};
// CHECK-NEXT:    [[ACC2]] = {{t[0-9]+}};
// CHECK-NEXT:    [[ACC3]] = {{t[0-9]+}};
// CHECK-NEXT:  }
// CHECK-NOT:   for (
// CHECK:       simdgroup_store([[ACC0]], ({{wg[0-9]+}} + {{v[0-9]+}}), ulong(32));
func.func @dot_loop(%a: !tile.ptr<f32>, %b: !tile.ptr<f32>, %c: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %r = "tile.arange"() {start = 0 : i64, end = 512 : i64} : () -> tensor<512xi32>
  %pa = "tile.splat"(%a) : (!tile.ptr<f32>) -> tensor<512x!tile.ptr<f32>>
  %pb = "tile.splat"(%b) : (!tile.ptr<f32>) -> tensor<512x!tile.ptr<f32>>
  %z = arith.constant dense<0.0> : tensor<32x32xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %acc = scf.for %k = %c0 to %n step %c1 iter_args(%s = %z) -> (tensor<32x32xf32>) : i32 {
    %off = "tile.splat"(%k) : (i32) -> tensor<512xi32>
    %o = arith.addi %r, %off : tensor<512xi32>
    %qa = "tile.addptr"(%pa, %o) : (tensor<512x!tile.ptr<f32>>, tensor<512xi32>) -> tensor<512x!tile.ptr<f32>>
    %qb = "tile.addptr"(%pb, %o) : (tensor<512x!tile.ptr<f32>>, tensor<512xi32>) -> tensor<512x!tile.ptr<f32>>
    %va = "tile.load"(%qa) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<512x!tile.ptr<f32>>) -> tensor<512xf32>
    %vb = "tile.load"(%qb) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<512x!tile.ptr<f32>>) -> tensor<512xf32>
    %ma = "tile.reshape"(%va) : (tensor<512xf32>) -> tensor<32x16xf32>
    %mb = "tile.reshape"(%vb) : (tensor<512xf32>) -> tensor<32x16xf32>
    %tb = "tile.trans"(%mb) : (tensor<32x16xf32>) -> tensor<16x32xf32>
    %d = "tile.dot"(%ma, %tb, %z) : (tensor<32x16xf32>, tensor<16x32xf32>, tensor<32x32xf32>) -> tensor<32x32xf32>
    %sum = arith.addf %s, %d : tensor<32x32xf32>
    scf.yield %sum : tensor<32x32xf32>
  }
  %r2 = "tile.arange"() {start = 0 : i64, end = 1024 : i64} : () -> tensor<1024xi32>
  %f = "tile.reshape"(%acc) : (tensor<32x32xf32>) -> tensor<1024xf32>
  %q = "tile.splat"(%c) : (!tile.ptr<f32>) -> tensor<1024x!tile.ptr<f32>>
  %qc = "tile.addptr"(%q, %r2) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f32>>
  "tile.store"(%qc, %f) : (tensor<1024x!tile.ptr<f32>>, tensor<1024xf32>) -> ()
  return
}
