"""Typed configuration of ``alloy serve`` (CLI flags map onto it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

DEFAULT_PORT = 11434
ENGINES = ("alloy", "reference")
"""``alloy``: the compiled engine (Alloy kernels, weights kept quantized); ``reference``: the numpy oracle."""
PORT_ENV = "ALLOY_PORT"  # documented override of the default port


def default_port() -> int:
    """11434, or the ``ALLOY_PORT`` environment variable when set."""
    raw = os.environ.get(PORT_ENV)
    if raw is None or raw == "":
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"{PORT_ENV}={raw!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{PORT_ENV}={raw!r} is out of range 0..65535")
    return port


@dataclass
class ServeConfig:
    """Server settings.

    ``model``: model reference (Ollama tag like ``smollm2:135m``, or a .gguf path).
    ``ctx``: context window in tokens (None = min(model's training context, 4096)).
    ``max_queue``: requests allowed to wait while one runs; beyond it → 503 + Retry-After.
    ``default_max_tokens``: generation cap when a request gives none (None = up to ctx).
    ``api_key``: when set, requests must carry it (``Authorization: Bearer`` or ``x-api-key``).
    ``engine``: which forward pass runs the model (:data:`ENGINES`); ``device``: where the compiled
    engine runs (``cpu`` or ``cuda``).
    """

    model: str = "gemma3:270m"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: Optional[str] = None
    ctx: Optional[int] = None
    max_queue: int = 16
    default_max_tokens: Optional[int] = None
    engine: str = "alloy"
    device: str = "cpu"

    def __post_init__(self):
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.ctx is not None and self.ctx < 16:
            raise ValueError(f"ctx must be >= 16 tokens, got {self.ctx}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device {self.device!r} is not one of cpu, cuda")
        if self.device == "cuda" and self.engine != "alloy":
            raise ValueError(f"the {self.engine} engine runs on the CPU only (device 'cuda' needs engine 'alloy')")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range 0..65535")
