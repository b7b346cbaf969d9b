"""mlx-lm-style entry points: ``load`` a GGUF model, ``generate`` / ``stream_generate`` text."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import numpy as np

from .engine.sampling import Sampler, SamplingParams

if TYPE_CHECKING:  # model code (and gguf-py) load on first use, keeping ``import alloy.serve`` light
    from .engine.kv_cache import KVCache
    from .models.base import Model
    from .ops.base import Ops


@dataclass
class GenerationResponse:
    """One generated token and the text it completes."""

    text: str                   # new text (held back while it would end inside a UTF-8 character)
    token: int
    logprob: float
    finish_reason: str | None   # None while generating, then "stop" (end of sequence) or "length"
    prompt_tokens: int
    generation_tokens: int
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)
    cached_tokens: int = 0      # prompt tokens reused from the cache passed in


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def engine_ops(engine: str = "alloy", device: str = "cpu", kv: str = "f16") -> Ops:
    """The op implementation of an engine name: ``alloy`` (compiled kernels, weights kept quantized, on
    ``device`` ``cpu`` or ``cuda``) or ``reference`` (the numpy oracle, weights dequantised to float32);
    ``kv``: what the KV cache stores (``f16`` or ``f32``)."""
    if engine == "alloy":
        from .ops.alloy import AlloyOps

        if device == "cuda":
            import alloy

            if not alloy.cuda_available() or not _torch_cuda():
                raise RuntimeError("the compiled engine on 'cuda' needs a CUDA GPU and driver, and torch with "
                                   "CUDA; none is usable in this process")
        return AlloyOps(device, kv=kv)
    if device != "cpu":
        raise ValueError(f"the {engine} engine runs on the CPU only, not {device!r}")
    if engine == "reference":
        from .ops.reference import ReferenceOps

        return ReferenceOps(kv)
    raise ValueError(f"engine {engine!r} is not one of alloy, reference")


def load(ref: str | os.PathLike, ops: Ops | None = None, engine: str = "alloy",
         device: str = "cpu", kv: str = "f16") -> tuple[Model, Any]:
    """``(model, tokenizer)`` for a GGUF path or a model reference (``gemma3:270m``, ...), run by
    ``engine`` on ``device`` with a ``kv`` cache (see :func:`engine_ops`) unless ``ops`` is given."""
    from .gguf.reader import GGUFFile
    from .gguf.resolve import resolve_model
    from .gguf.tokenizer import Tokenizer
    from .models import model_from_gguf

    ops = ops if ops is not None else engine_ops(engine, device, kv)
    resolved = resolve_model(os.fspath(ref))
    file = GGUFFile(resolved.path)
    model = model_from_gguf(file, ops)
    model.name = resolved.name
    return model, Tokenizer.from_gguf(file)


class StreamingDetokenizer:
    """Turns tokens into text pieces, holding back a piece until it is valid UTF-8.

    Each piece is the difference between decoding a short window of recent
    tokens with and without the newest ones, so spacing rules that depend on
    the previous token stay right and the cost per token stays constant.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0     # window start
        self._read = 0       # tokens before this are already emitted

    def _pending(self) -> str:
        done = self.tokenizer.decode(self.ids[self._prefix:self._read])
        text = self.tokenizer.decode(self.ids[self._prefix:])
        return text[len(done):] if len(text) > len(done) else ""

    def add(self, token: int) -> str:
        """Add a token; returns the text that is now complete (maybe empty)."""
        self.ids.append(token)
        piece = self._pending()
        if not piece or piece.endswith("\ufffd"):
            return ""
        self._prefix, self._read = self._read, len(self.ids)
        return piece

    def flush(self) -> str:
        """Whatever text is still held back."""
        piece = self._pending()
        self._prefix = self._read = len(self.ids)
        return piece


def encode_prompt(tokenizer, text: str) -> list[int]:
    """Token ids of a text prompt, with the tokenizer's BOS unless the text already
    starts with it (as chat templates that write ``<bos>`` themselves do)."""
    bos = tokenizer.bos_token_id
    if tokenizer.add_bos and bos is not None and text.startswith(tokenizer.decode([bos])):
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(text)


def stream_generate(model: Model, tokenizer, prompt: str | Sequence[int], max_tokens: int = 256,
                    sampling: SamplingParams | None = None, *,
                    mask_fn: Callable[[list[int]], np.ndarray | None] | None = None,
                    cache: KVCache | None = None,
                    **sampling_kwargs) -> Iterator[GenerationResponse]:
    """Generate up to ``max_tokens`` tokens after ``prompt`` (text, encoded with the
    tokenizer's special tokens, or token ids), yielding one response per token.

    ``sampling`` or keyword arguments of :class:`SamplingParams` choose the
    sampler; ``mask_fn(generated_ids)`` may return a bool allow-mask over the
    vocabulary (constrained decoding). Passing a ``cache`` kept from an earlier
    call reuses the prompt prefix it already holds (generation then also stops
    with "length" when the cache is full). The last response has ``finish_reason``.
    """
    if sampling is not None and sampling_kwargs:
        raise TypeError("pass either sampling=SamplingParams(...) or sampling keywords, not both")
    params = sampling or SamplingParams(**sampling_kwargs)
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    ids = encode_prompt(tokenizer, prompt) if isinstance(prompt, str) else [int(t) for t in prompt]
    if not ids:
        raise ValueError("the prompt is empty")
    n_ctx = model.config.n_ctx_train
    if len(ids) >= n_ctx:
        raise ValueError(f"the prompt has {len(ids)} tokens; the model's context holds {n_ctx}")
    if cache is None:
        cache = model.new_cache(min(n_ctx, len(ids) + max_tokens))
    elif len(ids) >= cache.max_tokens:
        raise ValueError(f"the prompt has {len(ids)} tokens; the KV cache holds {cache.max_tokens}")
    cached = min(cache.common_prefix(ids), len(ids) - 1)  # the last prompt token is always run for its logits
    cache.truncate(cached)
    sampler = Sampler(params)
    eos = set(tokenizer.eos_token_ids)
    detok = StreamingDetokenizer(tokenizer)
    history = list(ids)
    generated: list[int] = []
    logits = model.forward(ids[cached:], cache, last_only=True)[-1]
    while True:
        mask = mask_fn(generated) if mask_fn is not None else None
        tok = sampler.sample(logits, history, mask)
        history.append(tok.id)
        generated.append(tok.id)
        if tok.id in eos:
            text, reason = detok.flush(), "stop"
        elif len(generated) == max_tokens or cache.free == 0:
            text, reason = detok.add(tok.id), "length"
            text += detok.flush()
        else:
            text, reason = detok.add(tok.id), None
        yield GenerationResponse(text, tok.id, tok.logprob, reason, len(ids), len(generated),
                                 tok.top_logprobs, cached)
        if reason is not None:
            return
        logits = model.forward([tok.id], cache)[-1]


def generate(model: Model, tokenizer, prompt: str | Sequence[int], max_tokens: int = 256,
             verbose: bool = False, **kwargs) -> str:
    """The generated text (see :func:`stream_generate` for the arguments).

    With ``verbose``, the text is printed as it comes, then token counts and speeds.
    """
    pieces: list[str] = []
    start = time.perf_counter()
    first = None
    last = None
    for last in stream_generate(model, tokenizer, prompt, max_tokens, **kwargs):
        if first is None:
            first = time.perf_counter()
        pieces.append(last.text)
        if verbose:
            print(last.text, end="", flush=True)
    if verbose and last is not None:
        end = time.perf_counter()
        decode_n = last.generation_tokens - 1
        print()
        print(f"prompt: {last.prompt_tokens} tokens, {last.prompt_tokens / (first - start):.1f} tokens/s")
        if decode_n > 0:
            print(f"generation: {last.generation_tokens} tokens, {decode_n / (end - first):.1f} tokens/s")
    return "".join(pieces)
