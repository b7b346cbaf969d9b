"""The key/value cache of one sequence, and a batch of them."""
from __future__ import annotations

from typing import Sequence

from ..ops.base import KVBuffer, Ops


class KVCache:
    """Per-layer key/value buffers and the number of positions they hold.

    ``Model.forward`` writes new tokens at ``length`` and advances it;
    ``tokens`` lists the ids held. :meth:`truncate` rewinds, so a shared prompt
    prefix can be reused (see :meth:`common_prefix`).
    """

    def __init__(self, ops: Ops, max_tokens: int, layer_shapes: list[tuple[int, int, int]]):
        """``layer_shapes``: ``(n_head_kv, head_dim_k, head_dim_v)`` per layer."""
        if max_tokens <= 0:
            raise ValueError(f"KV cache size must be positive, got {max_tokens}")
        self.max_tokens = max_tokens
        self.length = 0
        self.tokens: list[int] = []
        self.layers: list[KVBuffer] = [ops.kv_buffer(max_tokens, *s) for s in layer_shapes]

    @property
    def free(self) -> int:
        """Positions still available."""
        return self.max_tokens - self.length

    @property
    def nbytes(self) -> int:
        """Memory the layers' buffers take."""
        return sum(layer.nbytes for layer in self.layers)

    def truncate(self, n: int) -> None:
        """Keep only the first ``n`` positions."""
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot truncate a KV cache of {self.length} tokens to {n}")
        self.length = n
        del self.tokens[n:]

    def common_prefix(self, ids) -> int:
        """How many leading ``ids`` the cache already holds."""
        n = 0
        for a, b in zip(self.tokens, ids):
            if a != b:
                break
            n += 1
        return n

    def copy_prefix(self, src: "KVCache", n: int) -> None:
        """Hold the first ``n`` positions of ``src`` (keys, values and token ids), copied: a branch of another
        sequence's prefix that later diverges from it."""
        if not 0 <= n <= src.length or n > self.max_tokens:
            raise ValueError(f"cannot copy {n} positions of a KV cache holding {src.length}")
        for dst, layer in zip(self.layers, src.layers):
            dst.copy_prefix(layer, n)
        self.length = n
        self.tokens = list(src.tokens[:n])

    def advance(self, ids: list[int]) -> None:
        """Record that ``ids`` were written at ``length`` (called by the model)."""
        self.tokens.extend(ids)
        self.length += len(ids)


class CacheBatch:
    """The caches of sequences decoded together, one new token (row) each, in row order."""

    def __init__(self, caches: Sequence[KVCache]):
        if not caches:
            raise ValueError("a cache batch needs at least one cache")
        self.caches = list(caches)
