"""Tile-level and lowering passes, by name (for alloy-opt and the target pipelines).

`PASSES[name]` is a callable `(op, target) -> None` working in place on a
`builtin.module` operation; `target` is the target description the pipeline
chose (passes/vector/target.py, passes/simt/target.py), None for the pass's default.
Passes raise `alloy.passes.errors.LoweringError` on input they cannot handle.
Modules are imported lazily so that `import alloy` stays cheap.
"""
from __future__ import annotations

import importlib

_REGISTRY = {
    "tile-verify": ("alloy.passes.tile_verify", "tile_verify"),
    "tile-canonicalize": ("alloy.passes.tile_canonicalize", "tile_canonicalize"),
    "tile-fold-dot-acc": ("alloy.passes.tile_fold_dot_acc", "tile_fold_dot_acc"),
    "threads-to-loops": ("alloy.passes.threads_to_loops", "threads_to_loops"),
    "convert-tile-to-vector": ("alloy.passes.vector.convert", "convert_tile_to_vector"),
    "expand-bf16-conversions": ("alloy.passes.vector.bf16", "expand_bf16_conversions"),
    "simt-layout": ("alloy.passes.simt.layout", "simt_layout"),
    "convert-tile-to-simt": ("alloy.passes.simt.convert", "convert_tile_to_simt"),
}


def _load(name: str):
    module, fn = _REGISTRY[name]
    return getattr(importlib.import_module(module), fn)


class _Passes(dict):
    """name -> pass callable, loaded on first access."""

    def __missing__(self, name):
        if name not in _REGISTRY:
            raise KeyError(name)
        fn = _load(name)
        self[name] = fn
        return fn

    def __contains__(self, name) -> bool:
        return name in _REGISTRY

    def __iter__(self):
        return iter(_REGISTRY)

    def keys(self):
        return _REGISTRY.keys()

    def __len__(self) -> int:
        return len(_REGISTRY)


PASSES: dict = _Passes()
