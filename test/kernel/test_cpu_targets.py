"""The `cpu_target` setting: the CPU target compiles for AVX2 laptops, AVX-512 servers and AArch64 (Apple
Silicon) from any host, and its code is correct on each CPU this host can run.

CI runs test/kernel a second time with ALLOY_CPU_TARGET=x86-64-v3 (Makefile `test`), so every kernel
test also checks the AVX2 code; here are the regressions of the defects an AVX2-only host showed.
"""
import importlib.util
import pathlib
import platform
import struct

import numpy as np
import pytest

import alloy as al
import alloy.compiler
import alloy.config as config
from alloy.runtime.buffer import bfloat16
from alloy.targets.cpu.machine import cpu_machine

_spec = importlib.util.spec_from_file_location("alloy_shipped_kernels",
                                               pathlib.Path(__file__).resolve().parents[1] / "shipped_kernels.py")
shipped = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shipped)

_core_spec = importlib.util.spec_from_file_location("alloy_targets_core_kernels",
                                                    pathlib.Path(__file__).with_name("test_core.py"))
core = importlib.util.module_from_spec(_core_spec)
_core_spec.loader.exec_module(core)

X86 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture
def cpu_target():
    """Set alloy.config's cpu_target for one test (kernels keep each target's code apart)."""
    old = config.get().cpu_target

    def use(name):
        config.set(cpu_target=name)

    yield use
    use(old)


@al.kernel
def to_bfloat16(x, out: al.output, N, BLOCK: al.constexpr = 64):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, (al.load(x + offs, mask=m) + 1.0).to(al.bfloat16), mask=m)


def test_config_names_the_cpu_targets():
    assert config.CPU_TARGETS == ("native", "x86-64-v3", "x86-64-v4", "aarch64")
    with pytest.raises(ValueError, match="Config.cpu_target: expected one of"):
        config.set(cpu_target="pentium")


def test_machine_descriptions():
    v3, v4, arm = cpu_machine("x86-64-v3"), cpu_machine("x86-64-v4"), cpu_machine("aarch64")
    assert (v3.cpu, v3.description.vector_bytes, v3.description.vector_registers) == ("x86-64-v3", 32, 16)
    assert v3.description.masked_bytes == (4, 8)  # AVX2 masks 32/64-bit lanes only
    assert (v4.description.vector_bytes, v4.description.masked_bytes) == (64, (1, 2, 4, 8))
    assert arm.cpu == "apple-m1" and arm.description.masked_bytes == ()
    assert arm.triple.startswith(("arm64", "aarch64"))
    assert arm.runs_here == (not X86)
    assert cpu_machine("native").runs_here


@pytest.mark.skipif(not X86 or not cpu_machine("x86-64-v3").runs_here, reason="needs an x86-64-v3 host")
@pytest.mark.parametrize("kind", ["sum", "max", "argmax"])
def test_wide_f16_rows_on_avx2(cpu_target, kind):
    """The 2 x 4096 f16 row reduction that sat in LLVM for 25+ minutes on an AVX2 host: its masked f16 rows
    now go piece by piece (AVX2 cannot mask 16-bit lanes), and its arithmetic runs in f32."""
    cpu_target("x86-64-v3")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4000)).astype(np.float16)
    args = dict(KIND=kind, AXIS=1, BR=2, BC=4096)
    out = np.asarray(core.reduce_rows[1](x, 2, 4000, **args))
    vector_ir = al.inspect(core.reduce_rows, x, 2, 4000, level="vector", print_ir=False, **args)
    assert "vector<4096xi1>, vector<4096xf16>" not in vector_ir  # no 4096-lane masked f16 load
    assert "vector<16xi1>, vector<16xi16>" in vector_ir  # 16-lane pieces of the bits
    if kind == "argmax":
        np.testing.assert_array_equal(out, np.argmax(x, axis=1))
    else:
        ref = getattr(np, kind)(x.astype(np.float64), axis=1)
        np.testing.assert_allclose(out.astype(np.float64), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("target", ["native", "x86-64-v3", "x86-64-v4"])
def test_bfloat16_results_load_and_round_to_nearest_even(cpu_target, target):
    """A kernel producing bfloat16 used to fail at load: `undefined symbol: __truncsfbf2`."""
    if not cpu_machine(target).runs_here:
        pytest.skip(f"this host cannot run {target} code")
    cpu_target(target)
    x = np.array([0.0, 1.0, -2.5, 3.14159, 1e30, -1e-30, np.inf, -np.inf, np.nan, 65504.0, 1.00390625,
                  1.01171875], np.float32)
    out = np.asarray(to_bfloat16[1](x, x.size))
    assert out.dtype == bfloat16
    ref = (x + np.float32(1.0)).astype(bfloat16)  # ml_dtypes rounds to nearest even
    np.testing.assert_array_equal(out.view(np.uint16)[:-4], ref.view(np.uint16)[:-4])
    assert np.isnan(out[8].astype(np.float32))
    np.testing.assert_array_equal(out[-3:].astype(np.float32), ref[-3:].astype(np.float32))
    asm = al.inspect(to_bfloat16, x, x.size, level="asm", print_ir=False)
    assert "__truncsfbf2" not in asm and "__extendbfsf2" not in asm


def _macho_cpu_type(obj: bytes) -> int:
    magic, cputype = struct.unpack_from("<II", obj)
    assert magic == 0xFEEDFACF, hex(magic)  # 64-bit Mach-O
    return cputype


@pytest.mark.parametrize("path", shipped.EXAMPLES, ids=lambda p: p.stem)
def test_shipped_kernels_cross_compile_for_aarch64(path, monkeypatch):
    """Every shipped kernel's specialisations compile for an Apple Silicon CPU (LLVM's AArch64 back end,
    from any host; nothing runs)."""
    from alloy.targets.cpu import compile_tile_module

    kernels = shipped.specializations(path, monkeypatch)
    assert kernels
    for source, spec in kernels:
        ctx, module, _ = alloy.compiler.tile_ir(source, spec)
        with ctx:
            art = compile_tile_module(module, cpu_target="aarch64", link=X86 is False)
        if X86:
            assert _macho_cpu_type(art.object) == 0x0100000C  # CPU_TYPE_ARM64
            assert art.shared_object is None
        else:
            assert art.object and art.shared_object


def test_code_for_another_cpu_does_not_load(cpu_target):
    if not X86:
        pytest.skip("an AArch64 host runs aarch64 code")
    cpu_target("aarch64")
    x = np.zeros(4, np.float32)
    with pytest.raises(al.CompilationError, match="cpu_target='aarch64'.*cannot run on this machine"):
        to_bfloat16[1](x, 4)


def test_inspecting_an_mlir_stage_stops_before_llvm(monkeypatch):
    """al.inspect at an MLIR level (tile-opt, vector, scf, llvm-dialect) runs only the MLIR stages up to it:
    LLVM's optimizer and code generation (seconds for a wide kernel) are not paid for a listing; at the
    assembly level, code is generated once (assembly, no object file)."""
    import alloy.targets.cpu.llvm_codegen as llvm_codegen
    from alloy.targets.cpu.link import compile_module
    from alloy.targets.cpu.machine import configured_machine

    calls = []
    real = llvm_codegen.compile_llvm_dialect
    monkeypatch.setattr(llvm_codegen, "compile_llvm_dialect", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = np.zeros(100, np.float32)
    texts = {level: al.inspect(to_bfloat16, x, 100, level=level, print_ir=False)
             for level in ("tile-opt", "vector", "scf", "llvm-dialect")}
    assert all("func" in text for text in texts.values()), texts
    assert calls == []
    assert "vector<" in texts["vector"]
    emitted = []
    real_emit = llvm_codegen._emit
    monkeypatch.setattr(llvm_codegen, "_emit", lambda llvm, tm, mod, kind: emitted.append(kind) or real_emit(
        llvm, tm, mod, kind))
    assert "ret" in al.inspect(to_bfloat16, x, 100, level="asm", print_ir=False)
    assert calls == [1]
    assert emitted == [0]  # the assembly only: a listing needs no object file (one code generation, not two)
    with pytest.raises(ValueError, match="until='llvm' is not an MLIR stage.*tile-opt, vector"):
        compile_module(None, configured_machine(), until="llvm")  # checked before the module is read
