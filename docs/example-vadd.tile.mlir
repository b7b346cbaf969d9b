module {
  func.func @vadd(%arg0: !tile.ptr<f32>, %arg1: !tile.ptr<f32>, %arg2: !tile.ptr<f32>, %arg3: i32) {
    %0 = "tile.program_id"() {axis = 0 : i64} : () -> i32
    %c128_i32 = arith.constant 128 : i32
    %1 = arith.muli %0, %c128_i32 : i32
    %2 = "tile.splat"(%1) : (i32) -> tensor<128xi32>
    %3 = "tile.arange"() {end = 128 : i64, start = 0 : i64} : () -> tensor<128xi32>
    %4 = arith.addi %2, %3 : tensor<128xi32>
    %5 = "tile.splat"(%arg3) : (i32) -> tensor<128xi32>
    %6 = arith.cmpi slt, %4, %5 : tensor<128xi32>
    %7 = "tile.splat"(%arg0) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
    %8 = "tile.addptr"(%7, %4) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
    %9 = "tile.load"(%8, %6) {operandSegmentSizes = array<i32: 1, 1, 0>} : (tensor<128x!tile.ptr<f32>>, tensor<128xi1>) -> tensor<128xf32>
    %10 = "tile.splat"(%arg1) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
    %11 = "tile.addptr"(%10, %4) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
    %cst = arith.constant 0.000000e+00 : f32
    %12 = "tile.splat"(%cst) : (f32) -> tensor<128xf32>
    %13 = "tile.load"(%11, %6, %12) {operandSegmentSizes = array<i32: 1, 1, 1>} : (tensor<128x!tile.ptr<f32>>, tensor<128xi1>, tensor<128xf32>) -> tensor<128xf32>
    %14 = arith.addf %9, %13 : tensor<128xf32>
    %15 = "tile.splat"(%arg2) : (!tile.ptr<f32>) -> tensor<128x!tile.ptr<f32>>
    %16 = "tile.addptr"(%15, %4) : (tensor<128x!tile.ptr<f32>>, tensor<128xi32>) -> tensor<128x!tile.ptr<f32>>
    "tile.store"(%16, %14, %6) : (tensor<128x!tile.ptr<f32>>, tensor<128xf32>, tensor<128xi1>) -> ()
    %17 = "tile.expand_dims"(%14) {axis = 0 : i64} : (tensor<128xf32>) -> tensor<1x128xf32>
    %18 = "tile.reduce"(%17) {axis = 1 : i64, kind = "sum"} : (tensor<1x128xf32>) -> tensor<1xf32>
    %19 = "tile.expand_dims"(%14) {axis = 0 : i64} : (tensor<128xf32>) -> tensor<1x128xf32>
    %20 = "tile.broadcast"(%19) : (tensor<1x128xf32>) -> tensor<16x128xf32>
    %21 = "tile.expand_dims"(%14) {axis = 0 : i64} : (tensor<128xf32>) -> tensor<1x128xf32>
    %22 = "tile.broadcast"(%21) : (tensor<1x128xf32>) -> tensor<16x128xf32>
    %23 = "tile.trans"(%22) : (tensor<16x128xf32>) -> tensor<128x16xf32>
    %cst_0 = arith.constant 0.000000e+00 : f32
    %24 = "tile.splat"(%cst_0) : (f32) -> tensor<16x16xf32>
    %25 = "tile.dot"(%20, %23, %24) : (tensor<16x128xf32>, tensor<128x16xf32>, tensor<16x16xf32>) -> tensor<16x16xf32>
    return
  }
}

