// RUN: not alloy-opt %s --pass-pipeline='builtin.module(convert-tile-to-vector)' 2>&1 | FileCheck %s
// RUN: not alloy-opt %s --pass-pipeline='builtin.module(no-such-pass)' 2>&1 | FileCheck %s --check-prefix=UNKNOWN

// A pointer whose base argument depends on control flow cannot be an offset from one argument.
// CHECK: error: scf.if at {{.*}}errors.mlir:[[# @LINE + 3]]:{{[0-9]+}}: pointer provenance is ambiguous
// UNKNOWN: error: unknown pass or bad options 'no-such-pass'
func.func @ambiguous(%a: !tile.ptr<f32>, %b: !tile.ptr<f32>, %c: i1) attributes {tile.kernel} {
  %p = scf.if %c -> (!tile.ptr<f32>) {
    scf.yield %a : !tile.ptr<f32>
  } else {
    scf.yield %b : !tile.ptr<f32>
  }
  %v = "tile.load"(%p) {operandSegmentSizes = array<i32: 1, 0, 0>} : (!tile.ptr<f32>) -> f32
  return
}
