// RUN: not alloy-opt %s 2>&1 | FileCheck %s

// Parse and verification errors name the file, line and column.
// CHECK: parse_error.mlir:[[# @LINE + 2]]:{{[0-9]+}}: error: 'tile.arange' op attribute "end" is expected
func.func @bad() attributes {tile.kernel} {
  %0 = "tile.arange"() {start = 0 : i64} : () -> tensor<4xi32>
  return
}
