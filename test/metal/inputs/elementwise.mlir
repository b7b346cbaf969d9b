// Math, casts, comparisons, loops and float4 vector loads: y = gelu-ish(x) over a grid-stride loop.
module attributes {gpu.container_module} {
  gpu.module @kernels {
    gpu.func @activations(%x: memref<?xf32>, %y: memref<?xf32>, %h: memref<?xf16>, %bits: memref<?xi32>, %n: i32) kernel {
      %i = gpu.global_id x
      %stride_b = gpu.grid_dim x
      %bdim = gpu.block_dim x
      %stride = arith.muli %stride_b, %bdim : index
      %n_idx = arith.index_cast %n : i32 to index
      %half = arith.constant 0.5 : f32
      %one = arith.constant 1.0 : f32
      %ninf = arith.constant 0xFF800000 : f32
      %c4 = arith.constant 4 : index
      %acc = scf.for %j = %i to %n_idx step %stride iter_args(%m = %ninf) -> (f32) {
        %v = memref.load %x[%j] : memref<?xf32>
        %t = math.tanh %v : f32
        %e = math.exp %v fastmath<afn> : f32
        %r = math.rsqrt %e : f32
        %p = arith.addf %t, %one : f32
        %g = arith.mulf %v, %p : f32
        %g2 = arith.mulf %g, %half : f32
        %big = arith.cmpf ugt, %g2, %r : f32
        %s = arith.select %big, %g2, %r : f32
        %m2 = arith.maximumf %m, %s : f32
        %hv = arith.truncf %s : f32 to f16
        %he = math.exp %hv : f16
        memref.store %he, %h[%j] : memref<?xf16>
        %b = arith.bitcast %s : f32 to i32
        %sh = arith.constant 3 : i32
        %bs = arith.shrsi %b, %sh : i32
        %bm = arith.muli %bs, %b : i32
        %fl = arith.floordivsi %bm, %sh : i32
        memref.store %fl, %bits[%j] : memref<?xi32>
        memref.store %g2, %y[%j] : memref<?xf32>
        scf.yield %m2 : f32
      }
      // a float4 pass over the first 4*k elements
      %k = arith.divui %n_idx, %c4 : index
      %in = arith.cmpi ult, %i, %k : index
      scf.if %in {
        %off = arith.muli %i, %c4 : index
        %v4 = vector.load %x[%off] : memref<?xf32>, vector<4xf32>
        %two = arith.constant dense<2.0> : vector<4xf32>
        %w = arith.mulf %v4, %two : vector<4xf32>
        %pos = arith.cmpf ogt, %w, %two : vector<4xf32>
        %sel = arith.select %pos, %w, %v4 : vector<4xi1>, vector<4xf32>
        %fl4 = math.floor %sel : vector<4xf32>
        %sum = vector.reduction <add>, %fl4 : vector<4xf32> into f32
        %e0 = vector.extract %fl4[0] : f32 from vector<4xf32>
        %ins = vector.insert %sum, %fl4[3] : f32 into vector<4xf32>
        %fin = vector.broadcast %e0 : f32 to vector<4xf32>
        %out = arith.addf %ins, %fin : vector<4xf32>
        %i4 = arith.fptosi %out : vector<4xf32> to vector<4xi32>
        %f4 = arith.sitofp %i4 : vector<4xi32> to vector<4xf32>
        vector.store %f4, %y[%off] : memref<?xf32>, vector<4xf32>
      }
      %c0 = arith.constant 0 : index
      %first = arith.cmpi eq, %i, %c0 : index
      scf.if %first {
        memref.store %acc, %y[%c0] : memref<?xf32>
      }
      gpu.return
    }
  }
}

// CHECK-LABEL: kernel void activations(
// CHECK:         device half* arg2 {{\[\[}}buffer(2)]]
// CHECK:        float {{v[0-9]+}} = as_type<float>(0xff800000u);
// CHECK:        for (int [[J:i[0-9]+]] = {{v[0-9]+}}; [[J]] < {{v[0-9]+}}; [[J]] += {{v[0-9]+}}) {
// CHECK:          precise::tanh(
// CHECK:          fast::exp(
// CHECK:          precise::rsqrt(
// CHECK:          bool [[UGT:v[0-9]+]] = !({{v[0-9]+}} <= {{v[0-9]+}});
// CHECK:          half {{v[0-9]+}} = metal::exp(
// CHECK:          int {{v[0-9]+}} = as_type<int>(
// CHECK:          int {{v[0-9]+}} = int(uint({{v[0-9]+}}) * uint({{v[0-9]+}}));
// CHECK:        float4 [[V4:v[0-9]+]] = float4(*(const device packed_float4*)(arg0 + [[OFF:v[0-9]+]]));
// CHECK:        bool4 [[POS:v[0-9]+]] = ({{v[0-9]+}} > {{v[0-9]+}});
// CHECK-NEXT:   float4 {{v[0-9]+}} = select([[V4]], {{v[0-9]+}}, [[POS]]);
// CHECK:        int4 [[I4:v[0-9]+]] = int4(
// CHECK-NEXT:   float4 [[F4:v[0-9]+]] = float4([[I4]]);
// CHECK-NEXT:   *(device packed_float4*)(arg1 + [[OFF]]) = [[F4]];
