"""The MSL translator on hand-written gpu-dialect SIMT kernels.

Each input under inputs/ carries FileCheck CHECK lines for the MSL it must produce; every
produced MSL must also pass the Metal-stdlib shim check (c++ -fsyntax-only). Nothing here runs
on Metal: see docs/metal.md.
"""
import subprocess
import sys
from pathlib import Path

import pytest

INPUTS = Path(__file__).parent / "inputs"
KERNELS = sorted(p.name for p in INPUTS.glob("*.mlir"))


def _parse(text: str):
    from mlir import ir

    return ir.Module.parse(text, ir.Context())


def _translate(text: str) -> str:
    from alloy.targets.metal import to_msl

    return to_msl(_parse(text))


def test_inputs_present():
    assert {"vector_add.mlir", "block_reduce.mlir", "mma_gemm.mlir", "atomics.mlir"} <= set(KERNELS)


@pytest.mark.parametrize("name", KERNELS)
def test_filecheck(name):
    path = INPUTS / name
    msl = _translate(path.read_text())
    proc = subprocess.run([sys.executable, "-m", "filecheck", str(path)], input=msl, capture_output=True, text=True)
    assert proc.returncode == 0, f"FileCheck failed for {name}:\n{proc.stdout}{proc.stderr}\n--- MSL ---\n{msl}"


@pytest.mark.parametrize("name", KERNELS)
def test_compiles_against_shim(name):
    from alloy.targets.metal import check_msl

    check_msl(_translate((INPUTS / name).read_text()), name=name.replace(".mlir", ".metal"))


# --------------------------------------------------------------- barriers

_BARRIER = """
module attributes {gpu.container_module} {
  gpu.module @m {
    gpu.func @k(%a: memref<?xf32>) workgroup(%s: memref<32xf32, #gpu.address_space<workgroup>>) kernel {
      %t = gpu.thread_id x
      %c0 = arith.constant 0 : index
      %v = memref.load %a[%c0] : memref<?xf32>
      BEFORE
      gpu.barrier
      %w = memref.load %a[%t] : memref<?xf32>
      memref.store %w, %s[%t] : memref<32xf32, #gpu.address_space<workgroup>>
      gpu.return
    }
  }
}
"""


def test_barrier_fences_device_memory_after_a_device_write():
    msl = _translate(_BARRIER.replace("BEFORE", "memref.store %v, %a[%t] : memref<?xf32>"))
    assert "threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);" in msl


def test_barrier_fences_device_memory_after_a_pointer_store():
    text = _BARRIER.replace("%a: memref<?xf32>)", "%a: memref<?xf32>, %p: !llvm.ptr<1>)").replace(
        "BEFORE", "llvm.store %v, %p : f32, !llvm.ptr<1>")
    assert "threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);" in _translate(text)


def test_barrier_fences_threadgroup_memory_only_without_device_writes():
    msl = _translate(_BARRIER.replace("BEFORE", ""))
    assert "threadgroup_barrier(mem_flags::mem_threadgroup);" in msl
    assert "mem_device" not in msl


def test_barrier_in_loop_with_later_device_write_fences_device():
    loop = """
      %l0 = arith.constant 0 : index
      %l1 = arith.constant 1 : index
      %l4 = arith.constant 4 : index
      scf.for %i = %l0 to %l4 step %l1 {
        gpu.barrier
        %lv = memref.load %a[%i] : memref<?xf32>
        memref.store %lv, %a[%t] : memref<?xf32>
      }
    """
    text = _BARRIER.replace("BEFORE", "").replace("      gpu.barrier\n", loop, 1)
    msl = _translate(text)
    check_barrier = [line.strip() for line in msl.splitlines() if "threadgroup_barrier" in line]
    assert check_barrier == ["threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);"]


# --------------------------------------------------------------- rejected input

def _kernel(body: str, args: str = "%a: memref<?xf32>, %x: f32, %i: index") -> str:
    return (
        "module attributes {gpu.container_module} {\n  gpu.module @m {\n"
        f"    gpu.func @k({args}) kernel {{\n{body}\n      gpu.return\n    }}\n  }}\n}}\n"
    )


REJECTED = {
    "math.erf": (_kernel("      %e = math.erf %x : f32"), r"'math\.erf' at -:4:\d+: op is not supported"),
    "f64": (_kernel("      %d = arith.extf %x : f32 to f64"), r"'arith\.extf' at -:4:\d+: type 'f64' has no Metal"),
    "memref.dim": (
        _kernel("      %c0 = arith.constant 0 : index\n      %d = memref.dim %a, %c0 : memref<?xf32>"),
        r"'memref\.dim' at -:5:\d+: buffer sizes are not available",
    ),
    "cf": (
        _kernel("      cf.br ^bb1\n    ^bb1:"),
        r"'gpu\.func' at -:3:\d+: kernel body has several blocks",
    ),
    "mma 16x16": (
        _kernel(
            "      %m = gpu.subgroup_mma_load_matrix %a[%i] {leadDimension = 16 : index} : memref<?xf32> -> !gpu.mma_matrix<16x16xf32, \"AOp\">"
        ),
        r"'gpu\.subgroup_mma_load_matrix' at -:4:\d+: matrix type .* \(simdgroup matrices are 8x8",
    ),
    "mixed mma": (
        _kernel(
            "      %h = arith.truncf %x : f32 to f16\n"
            "      %a16 = gpu.subgroup_mma_constant_matrix %h : !gpu.mma_matrix<8x8xf16, \"AOp\">\n"
            "      %b16 = gpu.subgroup_mma_constant_matrix %h : !gpu.mma_matrix<8x8xf16, \"BOp\">\n"
            "      %c = gpu.subgroup_mma_constant_matrix %x : !gpu.mma_matrix<8x8xf32, \"COp\">\n"
            "      %d = gpu.subgroup_mma_compute %a16, %b16, %c : !gpu.mma_matrix<8x8xf16, \"AOp\">, "
            "!gpu.mma_matrix<8x8xf16, \"BOp\"> -> !gpu.mma_matrix<8x8xf32, \"COp\">"
        ),
        r"'gpu\.subgroup_mma_compute' at -:8:\d+: mixed-precision simdgroup MMA",
    ),
    "shuffle up width 16": (
        _kernel(
            "      %o = arith.constant 1 : i32\n      %w = arith.constant 16 : i32\n"
            "      %r, %ok = gpu.shuffle up %x, %o, %w : f32"
        ),
        r"'gpu\.shuffle' at -:6:\d+: shuffle modes other than xor need a constant width of 32",
    ),
    "f16 atomic": (
        _kernel("      %r = memref.atomic_rmw addf %x, %a[%i] : (f16, memref<?xf16>) -> f16", "%a: memref<?xf16>, %x: f16, %i: index"),
        r"'memref\.atomic_rmw' at -:4:\d+: Metal atomics need a 32-bit element type",
    ),
    "inline asm (the CUDA SIMT form's PTX math)": (
        _kernel('      %r = llvm.inline_asm "ex2.approx.ftz.f32 $0, $1;", "=f,f" %x : (f32) -> f32'),
        r"'llvm\.inline_asm' at -:4:\d+: inline assembly \"ex2\.approx\.ftz\.f32 \$0, \$1;\" has no Metal translation",
    ),
    "generic pointer argument": (
        _kernel("", "%p: !llvm.ptr"),
        r"'gpu\.func' at -:3:\d+: pointer type '!llvm\.ptr' has no Metal address space",
    ),
    "reserved kernel name": (
        _kernel("").replace("@k(", "@main("),
        r"'gpu\.func' at -:3:\d+: kernel name 'main' is not a valid MSL identifier",
    ),
    "threadgroup memory over 32 KiB": (
        _kernel("", "%a: memref<?xf32>) workgroup(%s: memref<8193xf32, #gpu.address_space<workgroup>>"),
        r"'gpu\.func' at -:3:\d+: kernel declares 32772 bytes of threadgroup memory; Metal allows 32768",
    ),
    "device function": (
        _kernel("").replace(") kernel {", ") {"),
        r"'gpu\.func' at -:3:\d+: device functions .* are not supported",
    ),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_unsupported_input_names_op_and_location(case):
    from alloy.targets.metal import MSLTranslationError

    text, pattern = REJECTED[case]
    with pytest.raises(MSLTranslationError, match=pattern):
        _translate(text)


def test_module_without_kernels_is_rejected():
    from alloy.targets.metal import MSLTranslationError

    with pytest.raises(MSLTranslationError, match="no gpu.func kernel"):
        _translate("module {}")


def test_non_module_argument_is_a_type_error():
    from alloy.targets.metal import to_msl

    with pytest.raises(TypeError, match="mlir.ir.Module"):
        to_msl("gpu.module @m {}")


# --------------------------------------------------------------- expressions

EXPRESSIONS = {
    "i1 add is xor": ("%r = arith.addi %b, %b : i1", r"bool v\d+ = \(arg\d \^ arg\d\);"),
    "unsigned compare": ("%r = arith.cmpi ult, %n, %n : i32", r"bool v\d+ = \(uint\(arg\d\) < uint\(arg\d\)\);"),
    "wrapping add": ("%r = arith.addi %n, %n : i32", r"int v\d+ = int\(uint\(arg\d\) \+ uint\(arg\d\)\);"),
    "half literal": ("%r = arith.constant 1.5 : f16", r"half v\d+ = half\(1\.5f\);"),
    "nan literal": ("%r = arith.constant 0x7FC00000 : f32", r"float v\d+ = as_type<float>\(0x7fc00000u\);"),
    "int min literal": ("%r = arith.constant -2147483648 : i32", r"int v\d+ = \(-2147483647 - 1\);"),
    "uitofp": ("%r = arith.uitofp %n : i32 to f32", r"float v\d+ = float\(uint\(arg\d\)\);"),
    "extsi i1": ("%r = arith.extsi %b : i1 to i32", r"int v\d+ = \(-int\(arg\d\)\);"),
}


@pytest.mark.parametrize("case", sorted(EXPRESSIONS))
def test_expression(case):
    import re

    from alloy.targets.metal import check_msl

    body, pattern = EXPRESSIONS[case]
    msl = _translate(_kernel("      " + body, "%b: i1, %n: i32"))
    assert re.search(pattern, msl), msl
    check_msl(msl)
