"""`al.inspect`: the IR of a kernel at any stage of compilation.

    al.inspect(kernel, *example_args, level="tile-ir", **constexprs_and_args)
    al.inspect(pending_buffer, level="tile-ir")   # the (fused) kernel that will produce it

Parameters without an example argument are guessed from their use in the
kernel (frontend/example_args.py): arrays as float32 of the rank their
`.shape` unpacking shows, scalars as float32 or int32; pass example arrays for
other dtypes. When a guess does not compile, the error names the arguments to pass. Levels: "tile-ir",
the CPU target's stages (`alloy.targets.cpu.STAGES`, ending in "llvm"), the CUDA
target's "simt", "nvvm" and "ptx" (for `alloy.config.get().cuda_arch`; no GPU needed) and
"msl" (the Metal target's MSL source, `alloy.targets.metal`).
"""
from __future__ import annotations

import inspect

from .runtime.kernel import Kernel


def levels() -> tuple[str, ...]:
    from .targets.cpu import STAGES

    return ("tile-ir",) + tuple(s for s in STAGES if s != "tile-ir") + CUDA_LEVELS + ("msl",)


CUDA_LEVELS = ("simt", "nvvm", "ptx")


def inspect_kernel(kernel: Kernel, args, kwargs, level: str, print_ir: bool = False) -> str:
    from .runtime.buffer import AlloyBuffer

    known = levels()
    if level not in known:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(known)}")
    if isinstance(kernel, AlloyBuffer):
        text = inspect_pending(kernel, level)
        if print_ir:
            print(text)
        return text
    if not isinstance(kernel, Kernel):
        raise TypeError(f"al.inspect needs an @al.kernel or a pending AlloyBuffer, got {type(kernel).__name__}")
    args = list(args)
    kwargs = dict(kwargs)
    consumed = len(args)
    missing = []
    for p in kernel.params:
        if p.kind == "value" and p.name not in kwargs:
            if consumed > 0:
                consumed -= 1
                continue
            if p.default is not inspect.Parameter.empty:
                continue
            missing.append(p.name)
    from .frontend import example_args

    guesses = example_args.guess(kernel.source.tree, missing) if missing else []
    kwargs.update({g.name: example_args.example(g) for g in guesses})
    bound = kernel.bind(args, kwargs)
    spec, _ = kernel.specialize(bound)
    from .compiler import tile_ir
    from .language.core import CompilationError

    try:
        ctx, module, _gen = tile_ir(kernel.source, spec)
    except CompilationError as e:
        if not guesses:
            raise
        raise CompilationError(f"{e.message}\n{example_args.undecided(guesses)}", kernel=e.kernel,
                               filename=e.filename, lineno=e.lineno, source_line=e.source_line) from None
    from .compiler import lowering_failure
    from .passes.errors import LoweringError

    try:
        text = _lowered(ctx, module, level)
    except LoweringError as e:
        target = "Metal" if level == "msl" else "CUDA" if level in CUDA_LEVELS else "the CPU"
        raise lowering_failure(target, e, kernel.source) from None
    if print_ir:
        print(text)
    return text


def _lowered(ctx, module, level: str) -> str:
    """The text of tile-IR `module` at `level` (see levels())."""
    if level == "tile-ir":
        return str(module)
    if level == "msl":
        from .targets.metal import compile_tile_module as compile_metal

        with ctx:
            return compile_metal(module).msl
    if level in CUDA_LEVELS:
        from . import config
        from .targets.cuda import compile_tile_module as compile_cuda

        with ctx:
            return compile_cuda(module, arch=config.get().cuda_arch, keep_stages=True).stages[level]
    from .targets.cpu import compile_tile_module
    from .targets.cpu.pipeline import MLIR_STAGES

    until = level if level in dict(MLIR_STAGES) else None  # an MLIR stage: LLVM need not run
    with ctx:
        return compile_tile_module(module, keep_stages=True, link=False, until=until).stages[level]


def inspect_pending(buffer, level: str) -> str:
    """The IR of the launch that will produce a pending buffer: its fused kernel when its chain fuses
    (runtime/fusion.py), else its own kernel's; nothing runs."""
    from .passes.errors import LoweringError
    from .runtime.fusion import fused_module
    from .runtime.lazy import fusable_group

    node = buffer.pending
    if node is None:
        raise ValueError("al.inspect: this AlloyBuffer has its contents already; pass a kernel and its arguments")

    def legal(group):
        ctx, module, _ = fused_module(group)
        return None if module is None else (ctx, module)

    _, fused = fusable_group(node, legal)  # the group a run fuses
    module = None
    if fused is not None:
        ctx, module = fused
    if module is None:
        from .compiler import tile_ir

        ctx, module, _ = tile_ir(node.kernel.source, node.spec)
    try:
        return _lowered(ctx, module, level)
    except LoweringError as e:
        from .compiler import lowering_failure

        raise lowering_failure("the CPU", e, node.kernel.source) from None
