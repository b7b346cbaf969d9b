"""Typed configuration of ``alloy serve`` (CLI flags map onto it)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

DEFAULT_PORT = 11434
DEFAULT_MODEL = "smollm2:135m"
"""The packaged instruct model (SmolLM2-135M-Instruct, Q4_1) served when no model is named."""
DEFAULT_MAX_TOKENS = 2048
"""Generation cap per choice for requests that set none."""
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_JSON_DEPTH = 64
SPECULATION = ("none", "pld")
"""``pld``: prompt-lookup speculative decoding for greedy requests (drafts from the request's own text)."""
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
    ``parallel``: sequences decoded at once (continuous batching; each has its own KV cache).
    ``bookmarks``: prompt prefixes kept warm for requests that name one (``X-Alloy-Bookmark``).
    ``kv_budget_mb``: MiB all KV caches may take (None: no bound); cold ones are dropped to stay under it.
    ``kv_type``: what the KV cache stores, ``f16`` (default), ``f32`` or ``q8_0``.
    ``spec``: speculative decoding (:data:`SPECULATION`); ``draft_max``: tokens drafted a step.
    ``max_queue``: requests allowed to wait for a free sequence slot; beyond it → 503 (Anthropic: 529)
    with Retry-After.
    ``default_max_tokens``: generation cap per choice when a request gives none (None = up to ctx).
    ``api_key``: when set, requests must carry it (``Authorization: Bearer`` or ``x-api-key``).
    ``max_body_bytes`` / ``max_json_depth``: larger bodies get 413, deeper JSON nesting 400.
    ``allowed_hosts``: ``Host`` header names accepted besides the loopback names and the bound address
    (``*`` accepts any; a guard against DNS rebinding). ``cors_origins``: browser origins allowed to call
    the API besides the server's own page and loopback origins (``*`` allows any); other origins get 403.
    ``engine``: which forward pass runs the model (:data:`ENGINES`); ``device``: where the compiled
    engine runs (``cpu`` or ``cuda``).
    """

    model: str = DEFAULT_MODEL
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: Optional[str] = None
    ctx: Optional[int] = None
    max_queue: int = 16
    parallel: int = 4
    kv_type: str = "f16"
    bookmarks: int = 4
    kv_budget_mb: Optional[int] = None
    spec: str = "none"
    draft_max: int = 8
    default_max_tokens: Optional[int] = DEFAULT_MAX_TOKENS
    engine: str = "alloy"
    device: str = "cpu"
    max_body_bytes: int = MAX_BODY_BYTES
    max_json_depth: int = MAX_JSON_DEPTH
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self):
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.kv_budget_mb is not None and self.kv_budget_mb < 1:
            raise ValueError(f"kv_budget_mb must be >= 1, got {self.kv_budget_mb}")
        if self.bookmarks < 0:
            raise ValueError(f"bookmarks must be >= 0, got {self.bookmarks}")
        if self.kv_type not in ("f16", "f32", "q8_0"):
            raise ValueError(f"kv_type {self.kv_type!r} is not one of f16, f32, q8_0")
        if self.spec not in SPECULATION:
            raise ValueError(f"spec {self.spec!r} is not one of {', '.join(SPECULATION)}")
        if not 1 <= self.draft_max <= 15:
            raise ValueError(f"draft_max must be in 1..15, got {self.draft_max}")
        if self.parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {self.parallel}")
        if self.ctx is not None and self.ctx < 16:
            raise ValueError(f"ctx must be >= 16 tokens, got {self.ctx}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device {self.device!r} is not one of cpu, cuda")
        if self.device == "cuda" and self.engine != "alloy":
            raise ValueError(f"the {self.engine} engine runs on the CPU only (device 'cuda' needs engine 'alloy')")
        if self.default_max_tokens is not None and self.default_max_tokens < 1:
            raise ValueError(f"default_max_tokens must be >= 1, got {self.default_max_tokens}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.max_json_depth < 4:
            raise ValueError(f"max_json_depth must be >= 4, got {self.max_json_depth}")
        self.allowed_hosts = tuple(h.strip().lower() for h in self.allowed_hosts if h.strip())
        self.cors_origins = tuple(o.strip().rstrip("/").lower() for o in self.cors_origins if o.strip())
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range 0..65535")
