"""Alloy's local LLM server: GGUF models, a reference engine, HTTP dialects.

``load``, ``generate`` and ``stream_generate`` (mlx-lm style) are imported on
first use, so ``import alloy.serve`` stays cheap.
"""
from __future__ import annotations

__all__ = ["GenerationResponse", "SamplingParams", "generate", "load", "stream_generate"]

_LAZY = {
    "load": ".generate",
    "generate": ".generate",
    "stream_generate": ".generate",
    "GenerationResponse": ".generate",
    "SamplingParams": ".engine.sampling",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
