// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout)' | FileCheck %s
// RUN: sed 's/"metal"/"cuda:sm_90a"/' %s | alloy-opt --pass-pipeline='builtin.module(simt-layout)' | FileCheck %s --check-prefix=CUDA
// RUN: sed 's/"metal"/"vulkan"/' %s | not alloy-opt --pass-pipeline='builtin.module(simt-layout)' 2>&1 | FileCheck %s --check-prefix=BAD

// The SIMT target a kernel names (alloy-opt; the pipelines pass a SimtTarget instead) decides the
// chunk length: a kernel moving f16 gets 16-byte runs of 8 elements on CUDA, 4 on Metal (whose
// vectors have at most 4 elements). An unknown target is an error naming the attribute's value.
// CHECK: simt.vec = 4 : i32
// CUDA: simt.vec = 8 : i32
// BAD: unknown simt.target 'vulkan'
func.func @copy_f16(%x: !tile.ptr<f16>, %y: !tile.ptr<f16>) attributes {tile.kernel, simt.target = "metal"} {
  %i = "tile.arange"() {start = 0 : i32, end = 1024 : i32} : () -> tensor<1024xi32>
  %px = "tile.splat"(%x) : (!tile.ptr<f16>) -> tensor<1024x!tile.ptr<f16>>
  %py = "tile.splat"(%y) : (!tile.ptr<f16>) -> tensor<1024x!tile.ptr<f16>>
  %ax = "tile.addptr"(%px, %i) : (tensor<1024x!tile.ptr<f16>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f16>>
  %ay = "tile.addptr"(%py, %i) : (tensor<1024x!tile.ptr<f16>>, tensor<1024xi32>) -> tensor<1024x!tile.ptr<f16>>
  %v = "tile.load"(%ax) {operandSegmentSizes = array<i32: 1, 0, 0>} : (tensor<1024x!tile.ptr<f16>>) -> tensor<1024xf16>
  "tile.store"(%ay, %v) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<1024x!tile.ptr<f16>>, tensor<1024xf16>) -> ()
  return
}
