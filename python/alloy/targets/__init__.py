"""Compilation targets (cpu, cuda, metal): each lowers a module holding one tile kernel."""


def single_kernel(module):
    """(the module's operation, its one tile kernel function); LoweringError when there is not exactly one."""
    from alloy.passes.errors import LoweringError
    from alloy.dialects.tile import kernel_funcs

    src = module.operation if hasattr(module, "operation") else module
    funcs = kernel_funcs(src)
    if len(funcs) != 1:
        raise LoweringError(f"expected one tile kernel function in the module, found {len(funcs)}")
    return src, funcs[0]
