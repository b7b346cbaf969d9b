// c[i] = a[i] + b[i] for i < n: one thread per element, guarded for the ragged last block.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @vector_add(%a: memref<?xf32>, %b: memref<?xf32>, %c: memref<?xf32>, %n: i32) kernel {
      %bid = gpu.block_id x
      %bdim = gpu.block_dim x
      %tid = gpu.thread_id x
      %base = arith.muli %bid, %bdim : index
      %i = arith.addi %base, %tid : index
      %n_idx = arith.index_cast %n : i32 to index
      %in = arith.cmpi slt, %i, %n_idx : index
      scf.if %in {
        %x = memref.load %a[%i] : memref<?xf32>
        %y = memref.load %b[%i] : memref<?xf32>
        %s = arith.addf %x, %y : f32
        memref.store %s, %c[%i] : memref<?xf32>
      }
      gpu.return
    }
  }
}

// CHECK:      #include <metal_stdlib>
// CHECK:      using namespace metal;
// CHECK-LABEL: kernel void vector_add(
// CHECK-NEXT:   {{^ +}}const device float* arg0 {{\[\[}}buffer(0)]],
// CHECK-NEXT:   {{^ +}}const device float* arg1 {{\[\[}}buffer(1)]],
// CHECK-NEXT:   {{^ +}}device float* arg2 {{\[\[}}buffer(2)]],
// CHECK-NEXT:   constant int& arg3 {{\[\[}}buffer(3)]],
// CHECK-NEXT:   uint3 [[BID:alloy_[a-z_]+]] {{\[\[}}threadgroup_position_in_grid]],
// CHECK-NEXT:   uint3 [[BDIM:alloy_[a-z_]+]] {{\[\[}}threads_per_threadgroup]],
// CHECK-NEXT:   uint3 [[TID:alloy_[a-z_]+]] {{\[\[}}thread_position_in_threadgroup]]) {
// CHECK:        int [[B:v[0-9]+]] = int([[BID]].x);
// CHECK:        int [[I:v[0-9]+]] = ({{v[0-9]+}} + {{v[0-9]+}});
// CHECK:        bool [[IN:v[0-9]+]] = ([[I]] < {{v[0-9]+}});
// CHECK-NEXT:   if ([[IN]]) {
// CHECK-NEXT:     float [[X:v[0-9]+]] = arg0[[[I]]];
// CHECK-NEXT:     float [[Y:v[0-9]+]] = arg1[[[I]]];
// CHECK-NEXT:     float [[S:v[0-9]+]] = ([[X]] + [[Y]]);
// CHECK-NEXT:     arg2[[[I]]] = [[S]];
// CHECK-NEXT:   }
// CHECK-NEXT: }
