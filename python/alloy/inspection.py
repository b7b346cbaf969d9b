"""`al.inspect`: the IR of a kernel at any stage of compilation.

    al.inspect(kernel, *example_args, level="tile-ir", **constexprs_and_args)

Array parameters without an example argument are taken as 1-D float32
arrays; pass example arrays for other dtypes or ranks. Levels: "tile-ir",
the CPU target's stages (`alloy.targets.cpu.STAGES`, ending in "llvm"), the CUDA
target's "simt", "nvvm" and "ptx" (for `alloy.config.get().cuda_arch`; no GPU needed) and
"msl" (the Metal target's MSL source, `alloy.targets.metal`).
"""
from __future__ import annotations

import inspect

import numpy as np

from .runtime.kernel import Kernel


def levels() -> tuple[str, ...]:
    from .targets.cpu import STAGES

    return ("tile-ir",) + tuple(s for s in STAGES if s != "tile-ir") + CUDA_LEVELS + ("msl",)


CUDA_LEVELS = ("simt", "nvvm", "ptx")


def inspect_kernel(kernel: Kernel, args, kwargs, level: str, print_ir: bool = False) -> str:
    if not isinstance(kernel, Kernel):
        raise TypeError(f"al.inspect needs an @al.kernel, got {type(kernel).__name__}")
    known = levels()
    if level not in known:
        raise ValueError(f"unknown level {level!r}; choose one of {', '.join(known)}")
    args = list(args)
    kwargs = dict(kwargs)
    consumed = len(args)
    for p in kernel.params:
        if p.kind == "value" and p.name not in kwargs:
            if consumed > 0:
                consumed -= 1
                continue
            if p.default is not inspect.Parameter.empty:
                continue
            kwargs[p.name] = np.zeros(1, np.float32)
    bound = kernel.bind(args, kwargs)
    spec, _ = kernel.specialize(bound)
    from .compiler import tile_ir

    ctx, module, _gen = tile_ir(kernel.source, spec)
    if level == "tile-ir":
        text = str(module)
    elif level == "msl":
        from .targets.metal import compile_tile_module as compile_metal

        with ctx:
            text = compile_metal(module).msl
    elif level in CUDA_LEVELS:
        from . import config
        from .targets.cuda import compile_tile_module as compile_cuda

        with ctx:
            text = compile_cuda(module, arch=config.get().cuda_arch, keep_stages=True).stages[level]
    else:
        from .targets.cpu import compile_tile_module

        with ctx:
            text = compile_tile_module(module, keep_stages=True).stages[level]
    if print_ir:
        print(text)
    return text
