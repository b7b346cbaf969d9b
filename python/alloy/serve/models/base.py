"""The shared skeleton of a decoder-only model: weights, cache, chunked forward."""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from ..engine.kv_cache import CacheBatch, KVCache
from ..gguf.errors import GGUFError
from ..gguf.reader import GGUFFile
from ..ops.base import Array, Ops
from .config import ModelConfig

PREFILL_CHUNK = 256
"""Prompt tokens pushed through the layers at once (bounds attention-score memory)."""
REPLAYED_TOKENS = 16
"""Up to this many tokens (a speculative draft and the token before it) run as a step the backend may
capture and replay, like single-token decoding."""


class Model:
    """A decoder-only transformer written against :class:`~alloy.serve.ops.Ops`.

    Subclasses load their layer weights in :meth:`_load` and define one block in
    :meth:`_block`; everything else (embedding, chunking, the cache, the output
    head) is shared.
    """

    arch: ClassVar[str]

    def __init__(self, config: ModelConfig, file: GGUFFile, ops: Ops | None = None):
        if ops is None:
            from ..ops.reference import ReferenceOps

            ops = ReferenceOps()
        self.config = config
        self.ops = ops
        self.name = config.name  # ``load`` replaces it with the reference the model was loaded by
        self._file = file
        self.tok_embd = self._weight("token_embd.weight", (config.n_vocab, config.n_embd))
        self.output_norm = self._vector("output_norm.weight", (config.n_embd,))
        if "output.weight" in file.tensors:
            self.output = self._weight("output.weight", (config.n_vocab, config.n_embd))
        else:
            self.output = self.tok_embd  # tied embeddings
        self.layers = [self._load(i) for i in range(config.n_layer)]
        self._file = None  # weights are loaded; do not keep the mapping alive through the model

    @classmethod
    def config_from_gguf(cls, file: GGUFFile) -> ModelConfig:
        """The model's configuration; architectures override to add their own rules."""
        return ModelConfig.from_gguf(file)

    @classmethod
    def from_gguf(cls, file: GGUFFile, ops: Ops | None = None) -> "Model":
        return cls(cls.config_from_gguf(file), file, ops)

    # --- weights ------------------------------------------------------------
    def _tensor(self, name: str, shape: tuple[int, ...]):
        info = self._file.tensors.get(name)
        if info is None:
            raise GGUFError(f"{self.arch} model needs tensor {name!r}, which the file lacks", path=self._file.path)
        if tuple(info.shape) != tuple(shape):
            raise GGUFError(f"tensor {name!r} has shape {tuple(info.shape)}, expected {tuple(shape)}",
                            path=self._file.path, offset=info.offset)
        return info

    def _weight(self, name: str, shape: tuple[int, int]) -> Array:
        info = self._tensor(name, shape)
        weight = self.ops.weight(info)
        self._file.evict(info)   # the backend holds its own copy (or re-reads a view on use)
        return weight

    def _vector(self, name: str, shape: tuple[int, ...]) -> Array:
        return self.ops.vector(self._tensor(name, shape))

    def _optional_vector(self, name: str, shape: tuple[int, ...]) -> Array | None:
        return self._vector(name, shape) if name in self._file.tensors else None

    def _load(self, il: int) -> Any:
        """Weights of block ``il``."""
        raise NotImplementedError

    # --- forward ------------------------------------------------------------
    def _embed(self, tokens: Sequence[int]) -> Array:
        return self.ops.embedding(self.tok_embd, tokens)

    def _block(self, il: int, x: Array, positions: np.ndarray, cache: KVCache | CacheBatch) -> Array:
        """Block ``il`` on ``x [n, n_embd]`` at ``positions``: rows of one sequence (a :class:`KVCache`,
        positions from its length on), or one row per sequence of a :class:`CacheBatch`."""
        raise NotImplementedError

    def _attend(self, il: int, q: Array, k: Array, v: Array, cache: KVCache | CacheBatch, **kw) -> Array:
        """Layer ``il``'s cached attention (``ops.attention`` keywords) of one sequence's rows, or of
        each row of a batch against its own sequence's cache; the projections around it stay batched."""
        ops = self.ops
        if isinstance(cache, KVCache):
            return ops.attention(q, k, v, cache.layers[il], cache.length, **kw)
        rows = [slice(i, i + 1) for i in range(len(cache.caches))]
        return ops.concat_rows([
            ops.attention(ops.take_rows(q, r), ops.take_rows(k, r), ops.take_rows(v, r),
                          c.layers[il], c.length, **kw)
            for r, c in zip(rows, cache.caches)])

    def _logits(self, h: Array) -> Array:
        logits = self.ops.matmul(h, self.output)
        if self.config.final_softcap > 0:
            logits = self.ops.softcap(logits, self.config.final_softcap)
        return logits

    def new_cache(self, max_tokens: int | None = None) -> KVCache:
        """An empty cache for up to ``max_tokens`` positions (default: the training context)."""
        c = self.config
        shapes = [(c.n_head_kv, c.head_dim, c.head_dim_v)] * c.n_layer
        return KVCache(self.ops, max_tokens or c.n_ctx_train, shapes)

    def _check_tokens(self, tokens: Sequence[int], cache: KVCache) -> list[int]:
        ids = [int(t) for t in tokens]
        if not ids:
            raise ValueError("forward needs at least one token")
        bad = [t for t in ids if not 0 <= t < self.config.n_vocab]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary [0, {self.config.n_vocab})")
        if len(ids) > cache.free:
            raise ValueError(f"{len(ids)} tokens do not fit the KV cache ({cache.length} of "
                             f"{cache.max_tokens} positions used)")
        return ids

    def _decode_one(self, token: int, cache: KVCache) -> Array:
        """Logits ``[1, n_vocab]`` of one token at position ``cache.length`` (the cache is not advanced)."""
        return self._decode_tokens([token], cache)

    def _decode_tokens(self, tokens: list[int], cache: KVCache) -> Array:
        """Logits ``[n, n_vocab]`` of ``tokens`` at positions from ``cache.length`` on (the cache is not advanced)."""
        positions = np.arange(cache.length, cache.length + len(tokens))
        x = self._embed(tokens)
        for il in range(self.config.n_layer):
            x = self._block(il, x, positions, cache)
        return self._logits(self.ops.rms_norm(x, self.output_norm, self.config.rms_eps))

    def _run(self, tokens: Sequence[int], cache: KVCache, want: str) -> np.ndarray:
        """Push ``tokens`` through; ``want``: 'logits', 'last' (last row's logits) or 'hidden'."""
        ids = self._check_tokens(tokens, cache)
        ops, out = self.ops, []
        if len(ids) == 1 and want != "hidden":  # decoding: a step the backend may replay
            logits = ops.to_numpy(ops.decode_step(self._decode_one, ids[0], cache))
            cache.advance(ids)
            return logits
        if len(ids) <= REPLAYED_TOKENS and want == "logits":   # a draft's verification: replayable too
            logits = ops.to_numpy(ops.decode_tokens_step(self._decode_tokens, ids, cache))
            cache.advance(ids)
            return logits
        for lo in range(0, len(ids), PREFILL_CHUNK):
            chunk = ids[lo:lo + PREFILL_CHUNK]
            positions = np.arange(cache.length, cache.length + len(chunk))
            x = self._embed(chunk)
            for il in range(self.config.n_layer):
                x = self._block(il, x, positions, cache)
            cache.advance(chunk)
            if want == "last" and lo + PREFILL_CHUNK < len(ids):
                continue
            if want == "last":
                x = ops.take_rows(x, slice(len(chunk) - 1, len(chunk)))
            h = ops.rms_norm(x, self.output_norm, self.config.rms_eps)
            out.append(ops.to_numpy(h if want == "hidden" else self._logits(h)))
        return out[0] if len(out) == 1 else np.concatenate(out)

    def decode_batch(self, tokens: Sequence[int], caches: Sequence[KVCache]) -> np.ndarray:
        """Logits float32 ``[B, n_vocab]`` of one new token for each of B sequences (``tokens[i]``
        appended to ``caches[i]``): the weights are read once for the whole batch."""
        if len(tokens) != len(caches) or len(set(map(id, caches))) != len(caches):
            raise ValueError("decode_batch needs one token per distinct cache")
        if len(caches) == 1:
            return self.forward(tokens, caches[0])
        ids = [self._check_tokens([t], c)[0] for t, c in zip(tokens, caches)]
        logits = self.ops.to_numpy(self.ops.decode_batch_step(self._decode_rows, ids, list(caches)))
        for t, c in zip(ids, caches):
            c.advance([t])
        return logits

    def _decode_rows(self, tokens: list[int], caches: list[KVCache]) -> Array:
        """Logits ``[B, n_vocab]`` of token ``tokens[i]`` at position ``caches[i].length`` (caches not advanced)."""
        positions = np.array([c.length for c in caches])
        batch = CacheBatch(caches)
        x = self._embed(tokens)
        for il in range(self.config.n_layer):
            x = self._block(il, x, positions, batch)
        return self._logits(self.ops.rms_norm(x, self.output_norm, self.config.rms_eps))

    def forward(self, tokens: Sequence[int], cache: KVCache, *, last_only: bool = False) -> np.ndarray:
        """Logits float32 ``[len(tokens), n_vocab]`` (``[1, n_vocab]`` for the last token when
        ``last_only``); the tokens are appended to ``cache``."""
        return self._run(tokens, cache, "last" if last_only else "logits")

    def hidden_states(self, tokens: Sequence[int]) -> np.ndarray:
        """Final-normed hidden states ``[len(tokens), n_embd]`` computed with a fresh cache."""
        return self._run(tokens, self.new_cache(len(tokens)), "hidden")
