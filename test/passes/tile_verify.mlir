// RUN: sed 's/%MASK/%m/; s/MASK_T/i1/; s/LOAD_T/f32/; s/%OFF/%i/; s/OFF_T/i32/' %s | alloy-opt --pass-pipeline='builtin.module(tile-verify)' | FileCheck %s
// RUN: sed 's/%MASK/%mi/; s/MASK_T/i32/; s/LOAD_T/f32/; s/%OFF/%i/; s/OFF_T/i32/' %s | not alloy-opt --pass-pipeline='builtin.module(tile-verify)' 2>&1 | FileCheck %s --check-prefix=MASK
// RUN: sed 's/%MASK/%m/; s/MASK_T/i1/; s/LOAD_T/f16/; s/%OFF/%i/; s/OFF_T/i32/' %s | not alloy-opt --pass-pipeline='builtin.module(tile-verify)' 2>&1 | FileCheck %s --check-prefix=LOAD
// RUN: sed 's/%MASK/%m/; s/MASK_T/i1/; s/LOAD_T/f32/; s/%OFF/%o/; s/OFF_T/f32/' %s | not alloy-opt --pass-pipeline='builtin.module(tile-verify)' 2>&1 | FileCheck %s --check-prefix=OFFSET

// The type rules IRDL leaves to tile-verify (operands that may be scalars or tiles): a well-typed
// masked copy passes unchanged; a non-i1 mask, a load result that is not the pointee, and a float
// offset are each an error naming the op, its line and what was expected.
// CHECK-LABEL: func.func @copy
// CHECK: "tile.load"
// CHECK: "tile.store"
// MASK: error: tile.load at {{.*}}:23:{{[0-9]+}}: mask must be tensor<256xi1>, got tensor<256xi32>
// LOAD: error: tile.load at {{.*}}:23:{{[0-9]+}}: the result must be tensor<256xf32>, got tensor<256xf16>
// OFFSET: error: tile.addptr at {{.*}}:22:{{[0-9]+}}: the offset must be an integer or an integer tile, got tensor<256xf32>
func.func @copy(%x: !tile.ptr<f32>, %y: !tile.ptr<f32>, %n: i32) attributes {tile.kernel} {
  %i = "tile.arange"() {start = 0 : i32, end = 256 : i32} : () -> tensor<256xi32>
  %o = "arith.sitofp"(%i) : (tensor<256xi32>) -> tensor<256xf32>
  %ns = "tile.splat"(%n) : (i32) -> tensor<256xi32>
  %m = "arith.cmpi"(%i, %ns) {predicate = 2 : i64} : (tensor<256xi32>, tensor<256xi32>) -> tensor<256xi1>
  %mi = "arith.extui"(%m) : (tensor<256xi1>) -> tensor<256xi32>
  %px = "tile.splat"(%x) : (!tile.ptr<f32>) -> tensor<256x!tile.ptr<f32>>
  %ax = "tile.addptr"(%px, %OFF) : (tensor<256x!tile.ptr<f32>>, tensor<256xOFF_T>) -> tensor<256x!tile.ptr<f32>>
  %v = "tile.load"(%ax, %MASK) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<256x!tile.ptr<f32>>, tensor<256xMASK_T>) -> tensor<256xLOAD_T>
  %py = "tile.splat"(%y) : (!tile.ptr<f32>) -> tensor<256x!tile.ptr<f32>>
  %ay = "tile.addptr"(%py, %i) : (tensor<256x!tile.ptr<f32>>, tensor<256xi32>) -> tensor<256x!tile.ptr<f32>>
  "tile.store"(%ay, %v, %m) : (tensor<256x!tile.ptr<f32>>, tensor<256xLOAD_T>, tensor<256xi1>) -> ()
  return
}
