// RUN: not alloy-opt %s --pass-pipeline='builtin.module(tile-verify)' 2>&1 | FileCheck %s

// A barrier under an 'if' on the thread id: not every thread reaches it.
// CHECK: error: tile.barrier at {{.*}}simt_verify.mlir:[[# @LINE + 6]]:{{[0-9]+}}: al.barrier under control flow that depends on the thread (an 'if' whose condition differs between threads)
func.func @divergent(%x: !tile.ptr<f32>) attributes {tile.kernel, tile.threads = 64 : i64} {
  %t = "tile.thread_id"() : () -> i32
  %c16 = arith.constant 16 : i32
  %low = arith.cmpi slt, %t, %c16 : i32
  scf.if %low {
    "tile.barrier"() : () -> ()
  }
  return
}
