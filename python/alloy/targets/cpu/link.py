"""Link an object file into a shared library with the system C compiler."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
import shutil
import subprocess
import tempfile

from alloy.passes.errors import LoweringError


def link_shared(obj: bytes, name: str = "kernel") -> bytes:
    """The bytes of a shared library made of `obj` (libm symbols resolve at load time)."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise LoweringError("no C compiler (cc) found to link the kernel's shared library")
    with tempfile.TemporaryDirectory(prefix="alloy-link-") as tmp:
        o, so = os.path.join(tmp, f"{name}.o"), os.path.join(tmp, f"{name}.so")
        with open(o, "wb") as f:
            f.write(obj)
        proc = subprocess.run([cc, "-shared", "-o", so, o, "-lm"], capture_output=True, text=True)
        if proc.returncode:
            raise LoweringError(f"linking {name}.so failed: {proc.stderr.strip()}")
        with open(so, "rb") as f:
            return f.read()


@dataclass
class CompiledObject:
    """A compiled kernel: the object code (None when compilation stopped at an MLIR stage, or listed every
    stage without linking), the linked shared library (None when not linked, e.g. for a CPU other than
    this machine's) and, on request, every stage's text."""

    entry: str
    object: bytes | None
    shared_object: bytes | None
    cpu_target: str
    stages: dict = field(default_factory=dict)


def compile_module(module, machine, name: str | None = None, *, keep_stages: bool = False,
                   link: bool = True, until: str | None = None) -> CompiledObject:
    """Tile-IR module (not mutated) -> CompiledObject for `machine` (a CpuMachine); with `link`, the
    .so bytes exporting the entry point (LoweringError if the machine's code cannot run here).
    `until` names an MLIR stage (pipeline.MLIR_STAGES) to stop after: no LLVM, no object, no link."""
    from alloy.targets import single_kernel
    from alloy.targets.cpu.llvm_codegen import compile_llvm_dialect
    from alloy.targets.cpu.pipeline import MLIR_STAGES, lower_to_llvm_dialect

    if until is not None:
        if until not in dict(MLIR_STAGES):
            raise ValueError(f"until={until!r} is not an MLIR stage of the CPU pipeline: "
                             f"{', '.join(name for name, _ in MLIR_STAGES)}")
        link = False
    if link and not machine.runs_here:
        raise LoweringError(f"code for cpu_target={machine.name!r} ({machine.triple}, {machine.cpu}) cannot run "
                            f"on this machine; inspect it with al.inspect(..., level='asm') or set "
                            f"alloy.config.set(cpu_target='native')")
    src, func = single_kernel(module)
    entry = func.sym_name.value
    op = src.clone()
    stages: dict = {}
    if keep_stages:
        stages["tile-ir"] = str(src)
    try:
        lower_to_llvm_dialect(op, machine.description, stages if keep_stages else None, until)
        if until is not None:
            return CompiledObject(entry, None, None, machine.name, stages)
        mc = compile_llvm_dialect(op, machine, keep_ir=keep_stages, keep_asm=keep_stages,
                                  emit_object=link or not keep_stages)  # a listing alone needs no object
    finally:
        op.erase()
    if keep_stages:
        stages["llvm"], stages["asm"] = mc.llvm_ir, mc.asm
    shared = link_shared(mc.object, name or entry) if link else None
    return CompiledObject(entry, mc.object, shared, machine.name, stages)
