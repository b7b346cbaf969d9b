// RUN: alloy-opt %s --pass-pipeline='builtin.module(simt-layout,convert-tile-to-simt,canonicalize,cse)' | FileCheck %s

// The f16 matmul K loop on sm_90a (passes/simt/hopper_wgmma.py): a 64x64x64 tile_dot fed by a cp.async pipeline
// of eight 16 KiB stages in dynamic shared memory (stages 0-5 filled before the loop; iteration
// i + 6 copied while i multiplies, one wgmma group left in flight, so a stage is refilled two
// iterations after its last reader), the accumulator a wgmma fragment struct carried by the loop
// with only the first pointer of each 16-byte run of the a and b pointer tiles (8 per thread),
// and four m64n64k16 warpgroup MMAs per iteration. After the loop the fragments go through the
// (then idle) stage memory to the blocked layout of the store: 8-byte stores of column pairs,
// 16-byte loads of the layout's runs.
// CHECK: gpu.func @matmul
// CHECK-SAME: kernel attributes {known_block_size = array<i32: 128, 1, 1>, simt.dynamic_shared_bytes = 132096 : i64
// CHECK: llvm.mlir.addressof @alloy_dsmem : !llvm.ptr<3>
// CHECK: nvvm.cp.async.shared.global {{.*}}, 16, cache = cg
// CHECK-COUNT-6: nvvm.cp.async.commit.group
// CHECK: scf.for {{.*}} -> (!llvm.struct<({{(f32, )+}}f32)>, !llvm.ptr<1>, !llvm.ptr<1>, !llvm.ptr<1>, !llvm.ptr<1>, !llvm.ptr<1>, !llvm.ptr<1>, !llvm.ptr<1>, !llvm.ptr<1>, i32)
// CHECK-NEXT: nvvm.cp.async.wait.group 5
// CHECK-NEXT: nvvm.fence.proxy {kind = #nvvm.proxy_kind<async.shared>, space = #nvvm.shared_space<cta>}
// CHECK-NEXT: gpu.barrier
// CHECK: nvvm.wgmma.fence.aligned
// CHECK-COUNT-4: nvvm.wgmma.mma_async {{.*}} <m = 64, n = 64, k = 16>, D[<f32>, <one>], A[<f16>, <one>, <row>], B[<f16>, <one>, <col>]
// CHECK: nvvm.wgmma.commit.group.sync.aligned
// CHECK: nvvm.cp.async.shared.global
// CHECK: nvvm.cp.async.commit.group
// CHECK: nvvm.wgmma.wait.group.sync.aligned 1
// CHECK: scf.yield
// CHECK: nvvm.wgmma.wait.group.sync.aligned 0
// CHECK-NEXT: nvvm.cp.async.wait.group 0
// CHECK: llvm.extractvalue
// CHECK: llvm.store {{.*}} {alignment = 8 : i64} : vector<2xf32>, !llvm.ptr<3>
// CHECK: llvm.load {{.*}} {alignment = 16 : i64} : !llvm.ptr<3> -> vector<4xf32>
// CHECK: llvm.mlir.global external @alloy_dsmem() {addr_space = 3 : i32, alignment = 1024 : i64} : !llvm.array<0 x i8>
module {
  func.func @matmul(%arg0: !tile.ptr<f16>, %arg1: i32, %arg2: i32, %arg3: !tile.ptr<f16>, %arg4: i32, %arg5: i32, %arg6: !tile.ptr<f32>) attributes {tile.kernel, simt.target = "cuda:sm_90a"} {
    %0 = "tile.program_id"() {axis = 0 : i64} : () -> i32
    %c64_i32 = arith.constant 64 : i32
    %1 = arith.muli %0, %c64_i32 : i32
    %2 = "tile.arange"() {end = 64 : i64, start = 0 : i64} : () -> tensor<64xi32>
    %3 = "tile.splat"(%1) : (i32) -> tensor<64xi32>
    %4 = arith.addi %3, %2 : tensor<64xi32>
    %5 = "tile.program_id"() {axis = 1 : i64} : () -> i32
    %6 = arith.muli %5, %c64_i32 : i32
    %7 = "tile.splat"(%6) : (i32) -> tensor<64xi32>
    %8 = arith.addi %7, %2 : tensor<64xi32>
    %9 = "tile.expand_dims"(%4) {axis = 1 : i64} : (tensor<64xi32>) -> tensor<64x1xi32>
    %10 = "tile.splat"(%arg2) : (i32) -> tensor<64x1xi32>
    %11 = arith.muli %9, %10 : tensor<64x1xi32>
    %12 = "tile.splat"(%arg0) : (!tile.ptr<f16>) -> tensor<64x1x!tile.ptr<f16>>
    %13 = "tile.addptr"(%12, %11) : (tensor<64x1x!tile.ptr<f16>>, tensor<64x1xi32>) -> tensor<64x1x!tile.ptr<f16>>
    %14 = "tile.expand_dims"(%2) {axis = 0 : i64} : (tensor<64xi32>) -> tensor<1x64xi32>
    %15 = "tile.broadcast"(%13) : (tensor<64x1x!tile.ptr<f16>>) -> tensor<64x64x!tile.ptr<f16>>
    %16 = "tile.broadcast"(%14) : (tensor<1x64xi32>) -> tensor<64x64xi32>
    %17 = "tile.addptr"(%15, %16) : (tensor<64x64x!tile.ptr<f16>>, tensor<64x64xi32>) -> tensor<64x64x!tile.ptr<f16>>
    %18 = "tile.expand_dims"(%8) {axis = 1 : i64} : (tensor<64xi32>) -> tensor<64x1xi32>
    %19 = arith.muli %18, %10 : tensor<64x1xi32>
    %20 = "tile.splat"(%arg3) : (!tile.ptr<f16>) -> tensor<64x1x!tile.ptr<f16>>
    %21 = "tile.addptr"(%20, %19) : (tensor<64x1x!tile.ptr<f16>>, tensor<64x1xi32>) -> tensor<64x1x!tile.ptr<f16>>
    %22 = "tile.broadcast"(%21) : (tensor<64x1x!tile.ptr<f16>>) -> tensor<64x64x!tile.ptr<f16>>
    %23 = "tile.addptr"(%22, %16) : (tensor<64x64x!tile.ptr<f16>>, tensor<64x64xi32>) -> tensor<64x64x!tile.ptr<f16>>
    %cst = arith.constant dense<0.000000e+00> : tensor<64x64xf32>
    %c0_i32 = arith.constant 0 : i32
    %24:3 = scf.for %arg7 = %c0_i32 to %arg2 step %c64_i32 iter_args(%arg8 = %cst, %arg9 = %17, %arg10 = %23) -> (tensor<64x64xf32>, tensor<64x64x!tile.ptr<f16>>, tensor<64x64x!tile.ptr<f16>>)  : i32 {
      %40 = "tile.splat"(%arg1) : (i32) -> tensor<64x1xi32>
      %41 = arith.cmpi slt, %9, %40 : tensor<64x1xi32>
      %42 = "tile.splat"(%arg7) : (i32) -> tensor<1x64xi32>
      %43 = arith.addi %14, %42 : tensor<1x64xi32>
      %44 = "tile.splat"(%arg2) : (i32) -> tensor<1x64xi32>
      %45 = arith.cmpi slt, %43, %44 : tensor<1x64xi32>
      %46 = "tile.broadcast"(%41) : (tensor<64x1xi1>) -> tensor<64x64xi1>
      %47 = "tile.broadcast"(%45) : (tensor<1x64xi1>) -> tensor<64x64xi1>
      %48 = arith.andi %46, %47 : tensor<64x64xi1>
      %49 = "tile.load"(%arg9, %48) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<64x64x!tile.ptr<f16>>, tensor<64x64xi1>) -> tensor<64x64xf16>
      %50 = "tile.splat"(%arg4) : (i32) -> tensor<64x1xi32>
      %51 = arith.cmpi slt, %18, %50 : tensor<64x1xi32>
      %52 = "tile.broadcast"(%51) : (tensor<64x1xi1>) -> tensor<64x64xi1>
      %53 = arith.andi %52, %47 : tensor<64x64xi1>
      %54 = "tile.load"(%arg10, %53) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<64x64x!tile.ptr<f16>>, tensor<64x64xi1>) -> tensor<64x64xf16>
      %55 = "tile.trans"(%54) : (tensor<64x64xf16>) -> tensor<64x64xf16>
      %56 = "tile.dot"(%49, %55, %arg8) : (tensor<64x64xf16>, tensor<64x64xf16>, tensor<64x64xf32>) -> tensor<64x64xf32>
      %57 = "tile.splat"(%c64_i32) : (i32) -> tensor<64x64xi32>
      %58 = "tile.addptr"(%arg9, %57) : (tensor<64x64x!tile.ptr<f16>>, tensor<64x64xi32>) -> tensor<64x64x!tile.ptr<f16>>
      %59 = "tile.addptr"(%arg10, %57) : (tensor<64x64x!tile.ptr<f16>>, tensor<64x64xi32>) -> tensor<64x64x!tile.ptr<f16>>
      scf.yield %56, %58, %59 : tensor<64x64xf32>, tensor<64x64x!tile.ptr<f16>>, tensor<64x64x!tile.ptr<f16>>
    }
    %25 = "tile.splat"(%arg4) : (i32) -> tensor<64x1xi32>
    %26 = arith.muli %9, %25 : tensor<64x1xi32>
    %27 = "tile.splat"(%arg6) : (!tile.ptr<f32>) -> tensor<64x1x!tile.ptr<f32>>
    %28 = "tile.addptr"(%27, %26) : (tensor<64x1x!tile.ptr<f32>>, tensor<64x1xi32>) -> tensor<64x1x!tile.ptr<f32>>
    %29 = "tile.expand_dims"(%8) {axis = 0 : i64} : (tensor<64xi32>) -> tensor<1x64xi32>
    %30 = "tile.broadcast"(%28) : (tensor<64x1x!tile.ptr<f32>>) -> tensor<64x64x!tile.ptr<f32>>
    %31 = "tile.broadcast"(%29) : (tensor<1x64xi32>) -> tensor<64x64xi32>
    %32 = "tile.addptr"(%30, %31) : (tensor<64x64x!tile.ptr<f32>>, tensor<64x64xi32>) -> tensor<64x64x!tile.ptr<f32>>
    %33 = "tile.splat"(%arg1) : (i32) -> tensor<64x1xi32>
    %34 = arith.cmpi slt, %9, %33 : tensor<64x1xi32>
    %35 = "tile.splat"(%arg4) : (i32) -> tensor<1x64xi32>
    %36 = arith.cmpi slt, %29, %35 : tensor<1x64xi32>
    %37 = "tile.broadcast"(%34) : (tensor<64x1xi1>) -> tensor<64x64xi1>
    %38 = "tile.broadcast"(%36) : (tensor<1x64xi1>) -> tensor<64x64xi1>
    %39 = arith.andi %37, %38 : tensor<64x64xi1>
    "tile.store"(%32, %24#0, %39) : (tensor<64x64x!tile.ptr<f32>>, tensor<64x64xf32>, tensor<64x64xi1>) -> ()
    return
  }
}

