"""Errors raised while reading GGUF files and decoding their tensors."""
from __future__ import annotations

import os


class GGUFError(ValueError):
    """A GGUF file (or a tensor in it) is malformed or unsupported.

    The message names the file, the byte offset where known, and what was
    expected; ``path``, ``offset`` and ``detail`` keep the parts.
    """

    def __init__(self, detail: str, *, path: str | os.PathLike | None = None,
                 offset: int | None = None):
        self.detail = detail
        self.path = None if path is None else os.fspath(path)
        self.offset = offset
        where = []
        if self.path is not None:
            where.append(self.path)
        if offset is not None:
            where.append(f"offset {offset}")
        super().__init__(f"{', '.join(where)}: {detail}" if where else detail)


class CodecError(GGUFError):
    """A quantized tensor cannot be encoded or decoded (unknown type, bad size)."""
