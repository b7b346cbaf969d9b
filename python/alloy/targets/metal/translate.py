"""`to_msl`: the C++ MSL translator (alloy._compiler, lib/msl/) called on an MLIR module."""
from __future__ import annotations

import importlib


class MSLTranslationError(ValueError):
    """An op the Metal translator cannot express; the message names the op and its location."""


def _extension():
    import mlir.ir  # noqa: F401 - loads libMLIRPythonCAPI.so, which the extension links against

    try:
        _compiler = importlib.import_module("alloy._compiler")  # the C++ MSL translator extension
    except ImportError as exc:
        raise ImportError(
            "alloy._compiler (the C++ MSL translator in lib/) is not built; "
            "reinstall with the MLIR bindings present (`make setup`)"
        ) from exc
    return _compiler


def to_msl(module) -> str:
    """MSL source for every gpu.func kernel in the gpu.modules of `module` (an ir.Module or Operation).

    Kernel ABI: argument i of each gpu.func is bound at [[buffer(i)]] (memrefs as `device T*`,
    scalars as `constant T&`; index is 32-bit `int`). Raises MSLTranslationError.
    """
    ext = _extension()
    try:
        return ext.translate_to_msl(module)
    except ext.MSLTranslationError as exc:
        raise MSLTranslationError(str(exc)) from None
