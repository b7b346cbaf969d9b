// RUN: alloy-opt %s --pass-pipeline='builtin.module(tile-fold-dot-acc)' | FileCheck %s

// CHECK-LABEL: func.func @fold
// CHECK: %[[D:.*]] = "tile.dot"(%arg0, %arg1, %arg2)
// CHECK-NOT: arith.addf
// CHECK: return %[[D]]
func.func @fold(%a: tensor<4x8xf32>, %b: tensor<8x4xf32>, %x: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %z = arith.constant dense<0.0> : tensor<4x4xf32>
  %d = "tile.dot"(%a, %b, %z) : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %s = arith.addf %x, %d : tensor<4x4xf32>
  return %s : tensor<4x4xf32>
}

// A non-zero accumulator already carries a value: the add stays.
// CHECK-LABEL: func.func @nonzero_acc
// CHECK: "tile.dot"(%arg0, %arg1, %cst)
// CHECK: arith.addf
func.func @nonzero_acc(%a: tensor<4x8xf32>, %b: tensor<8x4xf32>, %x: tensor<4x4xf32>) -> tensor<4x4xf32> {
  %one = arith.constant dense<1.0> : tensor<4x4xf32>
  %d = "tile.dot"(%a, %b, %one) : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %s = arith.addf %x, %d : tensor<4x4xf32>
  return %s : tensor<4x4xf32>
}

// The dot result has a second user: folding would change it.
// CHECK-LABEL: func.func @two_uses
// CHECK: %[[D:.*]] = "tile.dot"(%arg0, %arg1, %cst)
// CHECK: arith.addf %arg2, %[[D]]
func.func @two_uses(%a: tensor<4x8xf32>, %b: tensor<8x4xf32>, %x: tensor<4x4xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %z = arith.constant dense<0.0> : tensor<4x4xf32>
  %d = "tile.dot"(%a, %b, %z) : (tensor<4x8xf32>, tensor<8x4xf32>, tensor<4x4xf32>) -> tensor<4x4xf32>
  %s = arith.addf %x, %d : tensor<4x4xf32>
  return %s, %d : tensor<4x4xf32>, tensor<4x4xf32>
}
