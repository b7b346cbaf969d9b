// Histogram and running extrema with device and threadgroup atomics.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @histogram(%keys: memref<?xi32>, %hist: memref<?xi32>, %vals: memref<?xf32>,
                        %total: memref<?xf32>, %peak: memref<?xf32>, %imax: memref<?xi32>, %n: i32)
        workgroup(%local: memref<16xi32, #gpu.address_space<workgroup>>) kernel {
      %one = arith.constant 1 : i32
      %mask = arith.constant 15 : i32
      %c0 = arith.constant 0 : index
      %i = gpu.global_id x
      %n_idx = arith.index_cast %n : i32 to index
      %in = arith.cmpi slt, %i, %n_idx : index
      scf.if %in {
        %k = memref.load %keys[%i] : memref<?xi32>
        %bin32 = arith.andi %k, %mask : i32
        %bin = arith.index_cast %bin32 : i32 to index
        %o1 = memref.atomic_rmw addi %one, %local[%bin] : (i32, memref<16xi32, #gpu.address_space<workgroup>>) -> i32
        %o2 = memref.atomic_rmw addi %one, %hist[%bin] : (i32, memref<?xi32>) -> i32
        %v = memref.load %vals[%i] : memref<?xf32>
        %o3 = memref.atomic_rmw addf %v, %total[%c0] : (f32, memref<?xf32>) -> f32
        %o4 = memref.atomic_rmw maximumf %v, %peak[%c0] : (f32, memref<?xf32>) -> f32
        %o5 = memref.atomic_rmw maxs %k, %imax[%c0] : (i32, memref<?xi32>) -> i32
        %o6 = memref.atomic_rmw minu %k, %imax[%c0] : (i32, memref<?xi32>) -> i32
      }
      gpu.return
    }
  }
}

// CHECK-LABEL: kernel void histogram(
// CHECK:         uint3 {{alloy_[a-z_]+}} {{\[\[}}thread_position_in_grid]]
// CHECK-NEXT:   threadgroup int [[LOCAL:wg0]][16];
// CHECK:        atomic_fetch_add_explicit((threadgroup atomic_int*)([[LOCAL]] + {{v[0-9]+}}), {{v[0-9]+}}, memory_order_relaxed);
// CHECK:        atomic_fetch_add_explicit((device atomic_int*)(arg1 + {{v[0-9]+}}), {{v[0-9]+}}, memory_order_relaxed);
// CHECK:        float {{v[0-9]+}} = atomic_fetch_add_explicit((device atomic_float*)(arg3 + {{v[0-9]+}}), {{v[0-9]+}}, memory_order_relaxed);
// maximumf has no Metal atomic: a compare-exchange loop on the bits, NaN-propagating.
// CHECK:        device atomic_uint* [[P:ap[0-9]+]] = (device atomic_uint*)(arg4 + {{v[0-9]+}});
// CHECK-NEXT:   uint [[OLD:old[0-9]+]] = atomic_load_explicit([[P]], memory_order_relaxed);
// CHECK-NEXT:   while (!atomic_compare_exchange_weak_explicit([[P]], &[[OLD]], as_type<uint>(float(select(fmax(as_type<float>([[OLD]]), {{v[0-9]+}}), {{.*}}isnan(as_type<float>([[OLD]])){{.*}})), memory_order_relaxed, memory_order_relaxed)) {}
// CHECK:        atomic_fetch_max_explicit((device atomic_int*)(arg5 + {{v[0-9]+}}), {{v[0-9]+}}, memory_order_relaxed);
// CHECK:        int(atomic_fetch_min_explicit((device atomic_uint*)(arg5 + {{v[0-9]+}}), uint({{v[0-9]+}}), memory_order_relaxed));
