"""Compile one kernel specialisation: frontend -> tile IR -> a target's artifact and its launch metadata.

Pure compilation: no cache, no runtime. `runtime/specializations.py` looks
compiled specialisations up in the kernel cache and calls this on a miss.
MLIR is imported only when a function here runs.
"""
from __future__ import annotations

from .frontend.launch_metadata import LaunchMetadata, OutputStore
from .frontend.signature import Spec


def tile_ir(source, spec: Spec):
    """(context, module, code generator) of the tile IR for one specialisation."""
    from .dialects import tile
    from .frontend import codegen

    ctx = tile.new_context()
    with ctx:
        module, gen = codegen.generate(source, spec)
        try:
            module.operation.verify()
        except Exception as e:  # an internal error: the frontend made invalid IR
            from .language.core import CompilationError

            raise CompilationError(f"internal error: invalid tile IR generated: {e}", kernel=source.name,
                                   filename=source.filename) from None
    return ctx, module, gen


def metadata(source, gen, entry: str, launch: dict | None = None) -> LaunchMetadata:
    """The launch metadata of a compiled specialisation: slots, output dtypes, store records, and in
    `launch["writes"]` the parameters it stores to ("?" for one the frontend cannot name)."""
    return LaunchMetadata(entry, source.name, tuple(gen.slots), dict(gen.output_dtypes),
                          tuple(OutputStore(r.param, r.offset_sym, r.mask_sym) for r in gen.stores),
                          {**(launch or {}), "writes": sorted(gen.written)})


def compile_cpu(source, spec: Spec):
    """(CompiledObject, metadata) of one specialisation for the configured cpu_target; CompilationError on failure."""
    from .passes.errors import LoweringError
    from .targets.cpu import compile_tile_module

    ctx, module, gen = tile_ir(source, spec)
    with ctx:
        try:
            art = compile_tile_module(module)
        except LoweringError as e:
            raise lowering_failure("the CPU", e, source) from None
    return art, metadata(source, gen, art.entry)


def compile_cuda(source, spec: Spec, arch: str):
    """(CudaKernel, metadata with the launch fields) of one specialisation for `arch`."""
    from .passes.errors import LoweringError
    from .targets.cuda import compile_tile_module

    ctx, module, gen = tile_ir(source, spec)
    with ctx:
        try:
            art = compile_tile_module(module, arch=arch)
        except LoweringError as e:
            raise lowering_failure("CUDA", e, source) from None
        uses_atomics = _uses_atomics(module)
    meta = metadata(source, gen, art.entry, dict(
        num_threads=art.num_threads, shared_bytes=art.shared_bytes, dynamic_shared_bytes=art.dynamic_shared_bytes,
        params=art.params, arch=art.arch, atomics=uses_atomics))
    return art, meta


def compile_metal(source, spec: Spec):
    """(MetalKernel, metadata with the launch fields) of one specialisation: MSL for Metal's runtime compiler."""
    from .passes.errors import LoweringError
    from .targets.metal import compile_tile_module
    from .targets.metal.translate import MSLTranslationError

    ctx, module, gen = tile_ir(source, spec)
    with ctx:
        try:
            art = compile_tile_module(module)
        except (LoweringError, MSLTranslationError) as e:
            raise lowering_failure("Metal", e, source) from None
        uses_atomics = _uses_atomics(module)
    meta = metadata(source, gen, art.entry, dict(num_threads=art.num_threads, params=art.params,
                                                 atomics=uses_atomics))
    return art, meta


def lowering_failure(target: str, error, source):
    """A CompilationError for a LoweringError, naming the kernel line of the failing op where known."""
    from .language.core import CompilationError

    line = getattr(error, "line", None)  # LoweringError knows the op's kernel line; the MSL translator's may not
    same_file = getattr(error, "filename", None) == source.filename and line is not None
    return CompilationError(f"could not lower to {target}: {error}", kernel=source.name, filename=source.filename,
                            lineno=line if same_file else None, source_line=source.line(line) if same_file else None)


def _uses_atomics(module) -> bool:
    """Whether the kernel has an atomic op (its outputs are then zeroed before a CUDA launch)."""
    from mlir import ir

    found = []

    def visit(op):
        if op.name in ("tile.atomic_rmw", "tile.atomic_cas"):
            found.append(op)
            return ir.WalkResult.INTERRUPT
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return bool(found)
