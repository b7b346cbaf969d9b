"""The CPU target: tile IR -> vector/scf/memref -> LLVM -> a shared library.

Public API (the runtime's contract):

    from alloy.targets.cpu import compile_tile_module, STAGES
    art = compile_tile_module(module, cpu_target=None, keep_stages=False, link=True)
    art.entry            # symbol of the entry point (the kernel func's name), C ABI of docs/cpu-abi.md:
                         # void entry(const int64_t *args, int64_t begin, int64_t end, int64_t g0, int64_t g1, int64_t g2)
    art.object           # the object file's bytes, for the CPU of `cpu_target` (None: alloy.config's)
    art.shared_object    # bytes of the linked .so (write it out, dlopen it); None with link=False
    art.stages           # with keep_stages: {stage name: text} for every name in STAGES (up to `until`)
                         # ("tile-ir", ..., "llvm-dialect", "llvm" = optimized LLVM IR, "asm")

`module` is an ir.Module holding one tile kernel func; it is not mutated.
Lowering failures raise alloy.passes.errors.LoweringError naming the op.
"""
from __future__ import annotations

from alloy.targets.cpu.pipeline import STAGES  # noqa: F401 - re-exported (no MLIR import)


def compile_tile_module(module, *, cpu_target: str | None = None, keep_stages: bool = False, link: bool = True,
                        until: str | None = None):
    """Compile a tile-IR module to a CompiledObject (entry, object, shared_object, stages) for
    `cpu_target` (one of alloy.config.CPU_TARGETS; None: the configured one); `until` names an MLIR
    stage to stop after (object and shared_object are then None)."""
    from alloy.targets.cpu.link import compile_module
    from alloy.targets.cpu.machine import configured_machine, cpu_machine

    machine = configured_machine() if cpu_target is None else cpu_machine(cpu_target)
    return compile_module(module, machine, keep_stages=keep_stages, link=link, until=until)
