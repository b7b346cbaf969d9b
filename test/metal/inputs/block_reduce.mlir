// out[block] = sum of x[block*256 .. block*256+255] (masked by n): a SIMD-group xor-shuffle tree,
// partial sums through threadgroup memory, then a subgroup_reduce over the partials.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @block_sum(%x: memref<?xf32>, %out: memref<?xf32>, %n: i32)
        workgroup(%partial: memref<8xf32, #gpu.address_space<workgroup>>) kernel {
      %c0 = arith.constant 0 : index
      %zero = arith.constant 0.0 : f32
      %w = arith.constant 32 : i32
      %bid = gpu.block_id x
      %tid = gpu.thread_id x
      %c256 = arith.constant 256 : index
      %base = arith.muli %bid, %c256 : index
      %i = arith.addi %base, %tid : index
      %n_idx = arith.index_cast %n : i32 to index
      %in = arith.cmpi slt, %i, %n_idx : index
      %v = scf.if %in -> (f32) {
        %l = memref.load %x[%i] : memref<?xf32>
        scf.yield %l : f32
      } else {
        scf.yield %zero : f32
      }
      // xor butterfly over offsets 16, 8, 4, 2, 1
      %c1 = arith.constant 1 : i32
      %c16 = arith.constant 16 : i32
      %c0i = arith.constant 0 : i32
      %sum:2 = scf.while (%acc = %v, %off = %c16) : (f32, i32) -> (f32, i32) {
        %more = arith.cmpi sgt, %off, %c0i : i32
        scf.condition(%more) %acc, %off : f32, i32
      } do {
      ^bb0(%acc2: f32, %off2: i32):
        %other, %valid = gpu.shuffle xor %acc2, %off2, %w : f32
        %acc3 = arith.addf %acc2, %other : f32
        %next = arith.shrui %off2, %c1 : i32
        scf.yield %acc3, %next : f32, i32
      }
      %lane = gpu.lane_id
      %sg = gpu.subgroup_id : index
      %first = arith.cmpi eq, %lane, %c0 : index
      scf.if %first {
        memref.store %sum#0, %partial[%sg] : memref<8xf32, #gpu.address_space<workgroup>>
      }
      gpu.barrier
      %c8 = arith.constant 8 : index
      %has = arith.cmpi ult, %lane, %c8 : index
      %p = scf.if %has -> (f32) {
        %l = memref.load %partial[%lane] : memref<8xf32, #gpu.address_space<workgroup>>
        scf.yield %l : f32
      } else {
        scf.yield %zero : f32
      }
      %total = gpu.subgroup_reduce add %p : (f32) -> f32
      %t0 = arith.cmpi eq, %tid, %c0 : index
      scf.if %t0 {
        memref.store %total, %out[%bid] : memref<?xf32>
      }
      gpu.return
    }
  }
}

// CHECK-LABEL: kernel void block_sum(
// CHECK:         uint {{alloy_[a-z_]+}} {{\[\[}}thread_index_in_simdgroup]]
// CHECK:         uint {{alloy_[a-z_]+}} {{\[\[}}simdgroup_index_in_threadgroup]]
// CHECK-NEXT:   threadgroup float [[PARTIAL:wg0]][8];
// CHECK:        while (true) {
// CHECK:          if (!{{v[0-9]+}}) break;
// CHECK:          float [[OTHER:v[0-9]+]] = simd_shuffle_xor([[ACC:r[0-9]+]], ushort([[OFF:r[0-9]+]]));
// CHECK:          float {{v[0-9]+}} = ([[ACC]] + [[OTHER]]);
// CHECK:          int {{v[0-9]+}} = int(uint([[OFF]]) >> uint({{v[0-9]+}}));
// CHECK:        }
// CHECK:        [[PARTIAL]][{{v[0-9]+}}] = [[ACC]];
// The kernel writes device memory only after the barrier: no device fence is needed.
// CHECK:        threadgroup_barrier(mem_flags::mem_threadgroup);
// CHECK:        float {{v[0-9]+}} = [[PARTIAL]][{{v[0-9]+}}];
// CHECK:        float [[TOTAL:v[0-9]+]] = simd_sum({{r[0-9]+}});
// CHECK:        arg1[{{v[0-9]+}}] = [[TOTAL]];
