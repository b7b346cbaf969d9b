// C[8x8 tile] = A[8xK] @ B[Kx8] with K = 64, one SIMD-group per tile: the A panel is staged
// through threadgroup memory, B is read from device memory, the accumulator is loop-carried.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @gemm_8x8(%a: memref<?xf32>, %b: memref<?xf32>, %c: memref<?xf32>)
        workgroup(%a_tile: memref<8x64xf32, #gpu.address_space<workgroup>>) kernel {
      %c0 = arith.constant 0 : index
      %c8 = arith.constant 8 : index
      %c64 = arith.constant 64 : index
      %c512 = arith.constant 512 : index
      %tile = gpu.block_id x
      %tid = gpu.thread_id x
      %bdim = gpu.block_dim x
      // stage A[tile*8 : tile*8+8, :] (512 floats) into threadgroup memory
      %a_base = arith.muli %tile, %c512 : index
      scf.for %k = %tid to %c512 step %bdim {
        %src = arith.addi %a_base, %k : index
        %v = memref.load %a[%src] : memref<?xf32>
        %row = arith.divui %k, %c64 : index
        %col = arith.remui %k, %c64 : index
        memref.store %v, %a_tile[%row, %col] : memref<8x64xf32, #gpu.address_space<workgroup>>
      }
      gpu.barrier
      %zero = arith.constant 0.0 : f32
      %acc0 = gpu.subgroup_mma_constant_matrix %zero : !gpu.mma_matrix<8x8xf32, "COp">
      %acc = scf.for %kk = %c0 to %c64 step %c8 iter_args(%acc_in = %acc0) -> (!gpu.mma_matrix<8x8xf32, "COp">) {
        %am = gpu.subgroup_mma_load_matrix %a_tile[%c0, %kk] {leadDimension = 64 : index}
            : memref<8x64xf32, #gpu.address_space<workgroup>> -> !gpu.mma_matrix<8x8xf32, "AOp">
        %b_off = arith.muli %kk, %c8 : index
        %bm = gpu.subgroup_mma_load_matrix %b[%b_off] {leadDimension = 8 : index}
            : memref<?xf32> -> !gpu.mma_matrix<8x8xf32, "BOp">
        %acc_out = gpu.subgroup_mma_compute %am, %bm, %acc_in
            : !gpu.mma_matrix<8x8xf32, "AOp">, !gpu.mma_matrix<8x8xf32, "BOp"> -> !gpu.mma_matrix<8x8xf32, "COp">
        scf.yield %acc_out : !gpu.mma_matrix<8x8xf32, "COp">
      }
      %c_off = arith.muli %tile, %c64 : index
      gpu.subgroup_mma_store_matrix %acc, %c[%c_off] {leadDimension = 8 : index}
          : !gpu.mma_matrix<8x8xf32, "COp">, memref<?xf32>
      gpu.return
    }
  }
}

// CHECK-LABEL: kernel void gemm_8x8(
// CHECK-NEXT:   const device float* arg0
// CHECK-NEXT:   const device float* arg1
// CHECK-NEXT:   {{^ +}}device float* arg2
// CHECK:        threadgroup float [[TILE:wg0]][512];
// CHECK:        for (int [[K:i[0-9]+]] = {{v[0-9]+}}; [[K]] < {{v[0-9]+}}; [[K]] += {{v[0-9]+}}) {
// CHECK:          [[TILE]][{{v[0-9]+}} * 64 + {{v[0-9]+}}] = {{v[0-9]+}};
// CHECK:        threadgroup_barrier(mem_flags::mem_threadgroup);
// CHECK:        simdgroup_float8x8 [[ZERO:v[0-9]+]] = make_filled_simdgroup_matrix<float, 8, 8>({{v[0-9]+}});
// CHECK-NEXT:   simdgroup_float8x8 [[ACC:r[0-9]+]] = [[ZERO]];
// CHECK-NEXT:   for (int [[KK:i[0-9]+]] = {{v[0-9]+}}; [[KK]] < {{v[0-9]+}}; [[KK]] += {{v[0-9]+}}) {
// CHECK-NEXT:     simdgroup_float8x8 [[A:v[0-9]+]];
// CHECK-NEXT:     simdgroup_load([[A]], ([[TILE]] + {{v[0-9]+}} * 64 + [[KK]]), ulong(64));
// CHECK:          simdgroup_float8x8 [[B:v[0-9]+]];
// CHECK-NEXT:     simdgroup_load([[B]], (arg1 + {{v[0-9]+}}), ulong(8));
// CHECK-NEXT:     simdgroup_float8x8 [[D:v[0-9]+]];
// CHECK-NEXT:     simdgroup_multiply_accumulate([[D]], [[A]], [[B]], [[ACC]]);
// CHECK-NEXT:     [[ACC]] = [[D]];
// CHECK-NEXT:   }
// CHECK:        simdgroup_store([[ACC]], (arg2 + {{v[0-9]+}}), ulong(8));
