"""What the CPU lowering generates for the benchmarked kernels: instruction mix, stack frame, calls.

    python benchmarks/codegen_summary.py

For each kernel and block configuration of the benchmarks it prints the host assembly's size,
its stack frame (`subq $N, %rsp`), the number of stack references, the calls it makes (libm
calls mean scalarised math), the most frequent instructions and the LLVM vector intrinsics
with their widths (from `al.inspect(..., level="asm" / "llvm")`). Used to explain the gaps in
docs/benchmarks.md.
"""
from __future__ import annotations

import collections
import re

import numpy as np

import alloy as al
from common import import_example


def summarize(name: str, kernel, *args, **constexprs) -> None:
    asm = al.inspect(kernel, *args, level="asm", print_ir=False, **constexprs)
    ll = al.inspect(kernel, *args, level="llvm", print_ir=False, **constexprs)
    ops = collections.Counter(m.group(1) for m in re.finditer(r"^\s+([a-z][a-z0-9]+)\b", asm, re.M))
    frames = [int(f) for f in re.findall(r"subq\s+\$(\d+), %rsp", asm)]
    calls = collections.Counter(re.findall(r"call[a-z]*\s+([\w.@]+)", asm))
    intrinsics = collections.Counter(f"{op} x{width}" for op, width in re.findall(r"@llvm\.([a-z.]+)\.v(\d+)", ll))
    print(f"{name}: {sum(ops.values())} instructions, stack frame {max(frames, default=0)} B, "
          f"{asm.count('(%rsp)')} stack references, calls {dict(calls) or 'none'}")
    print("  most frequent:", ", ".join(f"{op} {n}" for op, n in ops.most_common(12)))
    print("  LLVM vector intrinsics:", ", ".join(f"{k} ({n})" for k, n in sorted(intrinsics.items())) or "none")


def main() -> None:
    vector_add = import_example("vector_add").vector_add
    softmax = import_example("softmax").softmax
    matmul = import_example("matmul").matmul
    x = np.zeros(16, np.float32)
    for block in (64, 1024):
        summarize(f"vector_add BLOCK={block}", vector_add, x, x, 16, BLOCK=block)
    summarize("softmax BLOCK=1024", softmax, np.zeros((4, 1024), np.float32), 1024, BLOCK=1024)
    a = np.zeros((64, 64), np.float32)
    for bm, bn, bk in ((64, 64, 16), (32, 32, 32), (64, 32, 32)):
        summarize(f"matmul BLOCK_M/N/K={bm}/{bn}/{bk}", matmul, a, a, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)


if __name__ == "__main__":
    main()
