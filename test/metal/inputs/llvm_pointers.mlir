// The SIMT form's pointer ops: !llvm.ptr<1> arguments, getelementptr, aligned vector loads,
// stores, atomics, compare-exchange, pointer-to-int alignment tests and math on loaded values.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @pointers(%x: !llvm.ptr<1>, %out: !llvm.ptr<1>, %count: !llvm.ptr<1>, %bytes: !llvm.ptr<1>, %n: i32) kernel {
      %tid = gpu.thread_id x
      %t32 = arith.index_cast %tid : index to i32
      %t64 = arith.extsi %t32 : i32 to i64
      %c4 = arith.constant 4 : i64
      %c15 = arith.constant 15 : i64
      %c0 = arith.constant 0 : i64
      %one = arith.constant 1 : i32
      %base = arith.muli %t64, %c4 : i64
      %p = llvm.getelementptr %x[%base] : (!llvm.ptr<1>, i64) -> !llvm.ptr<1>, f32
      %addr = llvm.ptrtoint %p : !llvm.ptr<1> to i64
      %low = arith.andi %addr, %c15 : i64
      %aligned = arith.cmpi eq, %low, %c0 : i64
      %v = scf.if %aligned -> (vector<4xf32>) {
        %l = llvm.load %p {alignment = 16 : i64} : !llvm.ptr<1> -> vector<4xf32>
        scf.yield %l : vector<4xf32>
      } else {
        %l = llvm.load %p {alignment = 4 : i64} : !llvm.ptr<1> -> vector<4xf32>
        scf.yield %l : vector<4xf32>
      }
      %e0 = vector.extract %v[0] : f32 from vector<4xf32>
      %r = math.exp2 %e0 : f32
      %q = llvm.getelementptr %out[%t64] : (!llvm.ptr<1>, i64) -> !llvm.ptr<1>, f32
      llvm.store %r, %q {alignment = 4 : i64} : f32, !llvm.ptr<1>
      %old = llvm.atomicrmw add %count, %one acq_rel : !llvm.ptr<1>, i32
      %pair = llvm.cmpxchg %count, %old, %t32 acq_rel monotonic : !llvm.ptr<1>, i32
      %prev = llvm.extractvalue %pair[0] : !llvm.struct<(i32, i1)>
      %b = llvm.getelementptr %bytes[%t64] : (!llvm.ptr<1>, i64) -> !llvm.ptr<1>, i8
      %byte = arith.trunci %prev : i32 to i8
      llvm.store %byte, %b : i8, !llvm.ptr<1>
      gpu.return
    }
  }
}

// CHECK-LABEL: kernel void pointers(
// CHECK-NEXT:   {{^ +}}const device float* arg0 {{\[\[}}buffer(0)]],
// CHECK-NEXT:   {{^ +}}device float* arg1 {{\[\[}}buffer(1)]],
// CHECK-NEXT:   device int* arg2 {{\[\[}}buffer(2)]],
// CHECK-NEXT:   device char* arg3 {{\[\[}}buffer(3)]],
// CHECK-NEXT:   constant int& arg4 {{\[\[}}buffer(4)]],
// CHECK:        const device float* [[P:p[0-9]+]] = arg0 + {{v[0-9]+}};
// CHECK-NEXT:   long {{v[0-9]+}} = long((ulong)[[P]]);
// CHECK:        float4 {{v[0-9]+}} = *((const device float4*)[[P]]);
// CHECK:        float4 {{v[0-9]+}} = float4(*((const device packed_float4*)[[P]]));
// CHECK:        float [[R:v[0-9]+]] = precise::exp2({{v[0-9]+}});
// CHECK-NEXT:   device float* [[Q:p[0-9]+]] = arg1 + {{v[0-9]+}};
// CHECK-NEXT:   *[[Q]] = [[R]];
// CHECK-NEXT:   int [[OLD:v[0-9]+]] = atomic_fetch_add_explicit((device atomic_int*)arg2, {{v[0-9]+}}, memory_order_relaxed);
// CHECK-NEXT:   int [[PREV:old[0-9]+]];
// CHECK-NEXT:   bool [[OK:ok[0-9]+]];
// CHECK-NEXT:   do {
// CHECK-NEXT:     [[PREV]] = [[OLD]];
// CHECK-NEXT:     [[OK]] = atomic_compare_exchange_weak_explicit((device atomic_int*)arg2, &[[PREV]], {{v[0-9]+}}, memory_order_relaxed, memory_order_relaxed);
// CHECK-NEXT:   } while (!{{ok[0-9]+}} && {{old[0-9]+}} == [[OLD]]);
// CHECK-NEXT:   device char* {{p[0-9]+}} = arg3 + {{v[0-9]+}};
// CHECK-NEXT:   char {{v[0-9]+}} = char([[PREV]]);
