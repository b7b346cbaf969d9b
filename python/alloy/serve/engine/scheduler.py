"""The async engine: a queue of unified Requests served one at a time by a worker thread.

The event loop never runs the model: ``Engine.submit`` enqueues a request and returns a
:class:`Stream` (an async iterator of events) fed from the worker thread. Cancelling the
stream (client disconnect) sets the request's flag; the worker stops at the next token.
The KV cache is kept between requests and its longest common prefix with the next prompt
is reused; ``n`` > 1 choices share one prompt prefill.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .request import FinishEvent, Request, TokenEvent, TokenLogprob, Usage
from .stops import StopMatcher


class QueueFull(Exception):
    """More requests are waiting than ``max_queue`` allows."""

    def __init__(self, retry_after: int):
        super().__init__(f"server busy: request queue is full, retry in {retry_after}s")
        self.retry_after = retry_after


class PromptTooLong(Exception):
    def __init__(self, n_prompt: int, ctx: int):
        super().__init__(f"prompt has {n_prompt} tokens; the context window is {ctx} tokens "
                         f"(at least one must be left to generate)")
        self.n_prompt = n_prompt
        self.ctx = ctx


@dataclass
class EngineStats:
    requests_total: int = 0
    requests_rejected: int = 0
    requests_cancelled: int = 0
    requests_failed: int = 0
    prompt_tokens_total: int = 0
    generated_tokens_total: int = 0
    prompt_tokens_reused_total: int = 0
    waiting: int = 0
    running: int = 0
    busy_seconds_total: float = 0.0
    finish_reasons: dict[str, int] = field(default_factory=dict)


_END = object()


class Stream:
    """Async iterator over one request's events; ``cancel()`` stops generation."""

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop):
        self.request = request
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue()

    def _put(self, item: Any) -> None:  # called from the worker thread
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # loop closed: nobody is listening any more
            self.request.cancel()

    def cancel(self) -> None:
        self.request.cancel()

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self._queue.get()
        if item is _END:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item


class Detokenizer:
    """Incremental decoding that never splits a multi-byte character.

    Decodes a window that starts a few tokens back (prompt tail included), so
    tokenizers that drop a leading space at the start of a decode stay correct.
    """

    def __init__(self, tokenizer, context: list[int]):
        self._tok = tokenizer
        self._ids = list(context)
        self._prefix = 0
        self._read = len(self._ids)

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._tok.decode(self._ids[self._prefix:self._read])
        new_text = self._tok.decode(self._ids[self._prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            delta = new_text[len(prefix_text):] if new_text.startswith(prefix_text) else ""
            self._prefix, self._read = self._read, len(self._ids)
            return delta
        return ""


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    m = np.max(x)
    return x - (m + math.log(np.sum(np.exp(x - m))))


class Engine:
    """Runs requests against one loaded model.

    ``model``/``tokenizer`` come from :func:`alloy.serve.load`; ``ctx`` bounds prompt +
    generation; ``max_queue`` is how many requests may wait behind the running one.
    """

    def __init__(self, model, tokenizer, *, ctx: int, max_queue: int):
        self.model = model
        self.tokenizer = tokenizer
        self.ctx = ctx
        self.max_queue = max_queue
        self.stats = EngineStats()
        self.eos_ids = set(int(t) for t in (tokenizer.eos_token_ids or []))
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._cache = None
        self._cache_tokens: list[int] = []
        self._avg_seconds = 1.0
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._worker, name="alloy-engine", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    # -- submission (event loop side) ------------------------------------------------------
    def check_prompt(self, n_prompt: int) -> None:
        if n_prompt >= self.ctx:
            raise PromptTooLong(n_prompt, self.ctx)

    def _admit(self) -> None:
        """Count a new job in, or refuse it when ``max_queue`` jobs already wait."""
        with self._lock:
            pending = self.stats.waiting + self.stats.running
            if pending >= self.max_queue + 1:
                self.stats.requests_rejected += 1
                raise QueueFull(max(1, math.ceil(self._avg_seconds * pending)))
            self.stats.waiting += 1
            self.stats.requests_total += 1

    def submit(self, request: Request) -> Stream:
        """Queue ``request``; raises :class:`QueueFull` or :class:`PromptTooLong` at once."""
        if not request.prompt:
            raise ValueError("empty prompt")
        self.check_prompt(len(request.prompt))
        self._admit()
        stream = Stream(request, asyncio.get_running_loop())
        self._jobs.put(stream)
        return stream

    def submit_call(self, fn: Callable[[], Any]) -> "asyncio.Future":
        """Run ``fn`` (e.g. an embedding pass) on the worker thread, in queue order."""
        self._admit()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((fn, loop, future))
        return future

    # -- worker thread ---------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            stream = self._jobs.get()
            if stream is None:
                return
            if isinstance(stream, tuple):
                self._run_call(*stream)
                continue
            with self._lock:
                self.stats.waiting -= 1
                self.stats.running += 1
            t0 = time.perf_counter()
            try:
                if stream.request.cancelled.is_set():
                    with self._lock:
                        self.stats.requests_cancelled += 1
                else:
                    self._run(stream)
            except Exception as exc:  # report to the client, keep serving
                with self._lock:
                    self.stats.requests_failed += 1
                self._cache_tokens = []
                stream._put(exc)
            finally:
                dt = time.perf_counter() - t0
                with self._lock:
                    self.stats.running -= 1
                    self.stats.busy_seconds_total += dt
                    self._avg_seconds = 0.8 * self._avg_seconds + 0.2 * dt
                stream._put(_END)

    def _run_call(self, fn, loop, future) -> None:
        with self._lock:
            self.stats.waiting -= 1
            self.stats.running += 1
        try:
            result, error = fn(), None
        except Exception as exc:
            result, error = None, exc
        finally:
            with self._lock:
                self.stats.running -= 1

        def deliver():
            if future.cancelled():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        try:
            loop.call_soon_threadsafe(deliver)
        except RuntimeError:
            pass

    def _prefill(self, prompt: list[int]) -> tuple[np.ndarray, int]:
        """Bring the cache to ``prompt``; return the last position's logits and reused count."""
        if self._cache is None:
            self._cache = self.model.new_cache(self.ctx)
        common = 0
        limit = min(len(self._cache_tokens), len(prompt) - 1, self._cache.length)
        while common < limit and self._cache_tokens[common] == prompt[common]:
            common += 1
        self._cache.truncate(common)
        self._cache_tokens = list(prompt[:common])
        logits = self.model.forward(prompt[common:], self._cache, last_only=True)
        self._cache_tokens = list(prompt)
        return np.asarray(logits[-1], dtype=np.float32), common

    def _run(self, stream: Stream) -> None:
        from .sampling import Sampler, SamplingParams

        req = stream.request
        t_start = time.perf_counter()
        prompt_logits, reused = self._prefill(req.prompt)
        t_prompt = time.perf_counter() - t_start
        with self._lock:
            self.stats.prompt_tokens_total += len(req.prompt)
            self.stats.prompt_tokens_reused_total += reused
        budget = self.ctx - len(req.prompt)
        limit = budget if req.max_tokens is None else min(req.max_tokens, budget)
        stop_ids = self.eos_ids
        s = req.sampling
        for index in range(req.n):
            if index > 0:
                self._cache.truncate(len(req.prompt))
                self._cache_tokens = list(req.prompt)
            t_choice = time.perf_counter()
            params = SamplingParams(
                temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p,
                seed=None if s.seed is None else s.seed + index,
                repeat_penalty=s.repeat_penalty, repeat_last_n=s.repeat_last_n,
                presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
                logit_bias=dict(s.logit_bias))
            reason, matched, n_gen = self._generate_choice(
                stream, index, prompt_logits, Sampler(params), limit, stop_ids)
            with self._lock:
                self.stats.finish_reasons[reason] = self.stats.finish_reasons.get(reason, 0) + 1
                if reason == "cancelled":
                    self.stats.requests_cancelled += 1
            timings = {"prompt_s": t_prompt, "eval_s": time.perf_counter() - t_choice,
                       "total_s": time.perf_counter() - t_start}
            stream._put(FinishEvent(index, reason, Usage(len(req.prompt), n_gen), matched,
                                    timings))
            if reason == "cancelled":
                return

    def _generate_choice(self, stream: Stream, index: int, logits: np.ndarray, sampler,
                         limit: int, stop_ids: set[int]) -> tuple[str, Optional[str], int]:
        req = stream.request
        history = list(req.prompt)
        constraint = req.constraint_factory() if req.constraint_factory else None
        stops = StopMatcher(req.stop)
        detok = Detokenizer(self.tokenizer, req.prompt[-1:])
        n_gen = 0
        while True:
            if req.cancelled.is_set():
                return "cancelled", None, n_gen
            if n_gen >= limit:
                tail = stops.flush()
                if tail:
                    stream._put(TokenEvent(index, tail, []))
                return "length", None, n_gen
            mask = constraint.mask() if constraint is not None else None
            tok = sampler.sample(logits, history, mask)
            tid = int(tok.id)
            n_gen += 1
            with self._lock:
                self.stats.generated_tokens_total += 1
            history.append(tid)
            if constraint is not None:
                constraint.accept(tid)
            lp = self._logprobs(logits, tid, req.top_logprobs) if req.logprobs else None
            if tid in stop_ids:
                tail = stops.flush()
                stream._put(TokenEvent(index, tail, [tid], [lp] if lp else []))
                return "stop", None, n_gen
            text, matched = stops.feed(detok.push(tid))
            stream._put(TokenEvent(index, text, [tid], [lp] if lp else []))
            if matched is not None:
                return "stop", matched, n_gen
            if constraint is not None and constraint.is_terminated():
                tail = stops.flush()
                if tail:
                    stream._put(TokenEvent(index, tail, []))
                return "stop", None, n_gen
            if n_gen >= limit:
                continue
            logits = np.asarray(self.model.forward([tid], self._cache)[-1], dtype=np.float32)
            self._cache_tokens.append(tid)

    def _logprobs(self, logits: np.ndarray, tid: int, top: int) -> TokenLogprob:
        lsm = _log_softmax(logits)
        text = self.tokenizer.decode([tid])
        tops = []
        if top > 0:
            idx = np.argpartition(-lsm, top - 1)[:top]
            idx = idx[np.argsort(-lsm[idx])]
            for j in idx:
                t = self.tokenizer.decode([int(j)])
                tops.append((t, float(lsm[j]), list(t.encode("utf-8"))))
        return TokenLogprob(text, float(lsm[tid]), list(text.encode("utf-8")), tops)
