"""Alloy's local LLM server: GGUF models, a reference engine, HTTP dialects.

``load``, ``generate`` and ``stream_generate`` follow mlx-lm. They are imported
here eagerly (their module needs only numpy; model code, gguf-py and the
tokenizer load on the first ``load``), because a lazy ``__getattr__`` would let
the submodule ``alloy.serve.generate`` shadow the function ``generate``.
"""
from __future__ import annotations

from .engine.sampling import SamplingParams
from .generate import GenerationResponse, generate, load, stream_generate

__all__ = ["GenerationResponse", "SamplingParams", "generate", "load", "stream_generate"]
