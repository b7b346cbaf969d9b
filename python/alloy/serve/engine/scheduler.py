"""The async engine: continuous batching of unified Requests on a worker thread.

The event loop never runs the model: ``Engine.submit`` enqueues a request and returns a
:class:`Stream` (an async iterator of events) fed from the worker thread. The worker runs
steps: each step admits waiting requests into free slots (up to ``max_batch`` sequences,
each with its own KV cache), pushes one prompt chunk of at most ``prefill_chunk`` tokens
(so a long prompt never stalls the sequences that are decoding for longer than a chunk),
then samples one token for every decoding sequence and runs their next forward pass
together (``Model.decode_batch`` where the ops batch faster, else one replayed step per
sequence). Cancelling a stream (client disconnect) sets the request's flag; the worker
drops the sequence at the next chunk or token. A slot's cache keeps its tokens after a
request ends and the slot sharing the longest prefix with a new prompt is chosen, so a
second chat turn prefills only what is new; ``n`` > 1 choices share one prompt prefill.
"""

from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from .request import FinishEvent, Request, TokenEvent, TokenLogprob, Usage
from .stops import StopMatcher


MIN_PREFIX_COPY = 16
"""Shared prompt tokens from which copying another cache's prefix beats recomputing it."""
RETRY_AFTER_CAP = 30
"""Longest Retry-After (seconds) the server sends: the official SDKs wait at most 60 s."""


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
    batch_steps_total: int = 0
    batched_sequences_total: int = 0
    draft_tokens_total: int = 0
    draft_tokens_accepted_total: int = 0
    prefix_copies_total: int = 0
    bookmarks: int = 0
    kv_bytes: int = 0
    kv_evictions_total: int = 0
    busy_seconds_total: float = 0.0
    finish_reasons: dict[str, int] = field(default_factory=dict)


_END = object()
_NO_JOB = object()


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


class PromptLookup:
    """Drafts for prompt-lookup speculative decoding: the tokens that followed the most recent earlier
    occurrence of the sequence's last ``n`` tokens (``n`` from ``max_ngram`` down to ``min_ngram``).
    Editing, summarising and code tasks repeat their input, and then most drafts are accepted."""

    def __init__(self, max_draft: int = 8, max_ngram: int = 4, min_ngram: int = 2):
        if max_draft < 1 or not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"bad prompt-lookup settings: max_draft={max_draft}, ngram {min_ngram}..{max_ngram}")
        self.max_draft = max_draft
        self.max_ngram = max_ngram
        self.min_ngram = min_ngram

    def draft(self, history: list[int], limit: int) -> list[int]:
        if limit < 1:
            return []
        tokens = np.asarray(history, dtype=np.int64)
        for n in range(min(self.max_ngram, len(tokens) - 1), self.min_ngram - 1, -1):
            tail = tokens[-n:]
            windows = np.lib.stride_tricks.sliding_window_view(tokens[:-1], n)
            hits = np.flatnonzero((windows == tail).all(axis=1))
            if hits.size:
                start = int(hits[-1]) + n
                return [int(t) for t in tokens[start:start + limit]]
        return []


class _Sequence:
    """One request in a slot: its prompt's prefill, then its choices one after another."""

    def __init__(self, stream: Stream, cache, reused: int):
        self.stream = stream
        self.request = stream.request
        self.cache = cache
        self.reused = reused
        self.pending = list(self.request.prompt[reused:])   # prompt tokens still to prefill
        self.t_start = time.perf_counter()
        self.t_prompt = 0.0
        self.prompt_logits: Optional[np.ndarray] = None
        self.logits: Optional[np.ndarray] = None
        self.index = -1                                     # current choice
        self.next_token: Optional[int] = None               # sampled, waiting for its forward pass

    @property
    def prefilling(self) -> bool:
        return self.prompt_logits is None

    def start_choice(self, index: int, tokenizer) -> None:
        from .sampling import Sampler, SamplingParams

        req, s = self.request, self.request.sampling
        if index > 0:
            self.cache.truncate(len(req.prompt))
        self.index = index
        self.logits = self.prompt_logits
        self.t_choice = time.perf_counter()
        self.sampler = Sampler(SamplingParams(
            temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, min_p=s.min_p,
            seed=None if s.seed is None or s.seed < 0 else s.seed + index,
            repeat_penalty=s.repeat_penalty, repeat_last_n=s.repeat_last_n,
            presence_penalty=s.presence_penalty, frequency_penalty=s.frequency_penalty,
            logit_bias=dict(s.logit_bias)))
        self.history = list(req.prompt)
        self.constraint = req.constraint_factory() if req.constraint_factory else None
        self.stops = StopMatcher(req.stop)
        self.detok = Detokenizer(tokenizer, req.prompt[-1:])
        self.n_gen = 0


class Engine:
    """Runs requests against one loaded model.

    ``model``/``tokenizer`` come from :func:`alloy.serve.load`; ``ctx`` bounds prompt +
    generation per sequence; ``max_batch`` sequences run at once; ``max_queue`` more may wait;
    ``prefill_chunk`` bounds the prompt tokens pushed per step; ``speculation`` (prompt lookup)
    drafts tokens for greedy requests, verified in one forward pass; ``max_bookmarks`` prompt prefixes
    named by requests are kept warm (least recently used dropped first); ``kv_budget`` bounds the bytes
    all KV caches take: cold caches (bookmarks, then idle slots) are dropped to stay under it, and new
    requests wait while the running ones alone fill it.
    """

    def __init__(self, model, tokenizer, *, ctx: int, max_queue: int, max_batch: int = 4,
                 prefill_chunk: int = 256, speculation: Optional[PromptLookup] = None, max_bookmarks: int = 4,
                 kv_budget: Optional[int] = None):
        if max_batch < 1 or prefill_chunk < 1:
            raise ValueError(f"max_batch and prefill_chunk must be >= 1, got {max_batch}, {prefill_chunk}")
        self.speculation = speculation
        self.max_bookmarks = max_bookmarks
        self.kv_budget = kv_budget
        self._bookmarks: dict[str, Any] = {}        # name -> KV cache of a kept prompt prefix (LRU order)
        self.model = model
        self.tokenizer = tokenizer
        self.ctx = ctx
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.prefill_chunk = prefill_chunk
        self.stats = EngineStats()
        self.eos_ids = set(int(t) for t in (tokenizer.eos_token_ids or []))
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._free: list = []                       # KV caches of idle slots (their tokens kept)
        self._slots_made = 0
        self._waiting: deque[Stream] = deque()
        self._active: list[_Sequence] = []
        self._avg_seconds = 1.0
        self._batched = bool(getattr(model.ops, "batched_decode", False))
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

    def expected_wait(self) -> int:
        """Seconds until a new request would get a slot, from the running requests' ages and the
        average request time (at least 1, at most :data:`RETRY_AFTER_CAP`)."""
        now = time.perf_counter()
        with self._lock:
            ages = sorted(now - seq.t_start for seq in list(self._active))
            waiting = self.stats.waiting
            avg = self._avg_seconds
        soonest = max(0.0, avg - ages[-1]) if ages else 0.0
        wait = soonest + (waiting // self.max_batch) * avg
        return int(min(RETRY_AFTER_CAP, max(1, math.ceil(wait))))

    def _admit(self) -> None:
        """Count a new job in, or refuse it when ``max_queue`` jobs already wait for a slot."""
        with self._lock:
            pending = self.stats.waiting + self.stats.running
            full = pending >= self.max_queue + self.max_batch
            if full:
                self.stats.requests_rejected += 1
            else:
                self.stats.waiting += 1
                self.stats.requests_total += 1
        if full:
            raise QueueFull(self.expected_wait())

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
        """Run ``fn`` (e.g. an embedding pass) on the worker thread between two steps."""
        self._admit()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((fn, loop, future))
        return future

    # -- worker thread ---------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            idle = not self._active and not self._waiting
            try:
                job = self._jobs.get(block=idle)
            except queue.Empty:
                job = _NO_JOB
            while job is not _NO_JOB:
                if job is None:
                    self._shutdown()
                    return
                if isinstance(job, tuple):
                    self._run_call(*job)
                else:
                    self._waiting.append(job)
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    job = _NO_JOB
            self._fill_slots()
            self._within_budget()
            if self._active:
                try:
                    self._step()
                except Exception as exc:   # never lose the worker: fail what was running, keep serving
                    for seq in list(self._active):
                        self._end(seq, error=exc)

    def _shutdown(self) -> None:
        for seq in self._active:
            seq.request.cancel()
            self._end(seq, error=None)
        for stream in self._waiting:
            stream._put(_END)

    def _fill_slots(self) -> None:
        """Move waiting requests into free slots, each onto the cache sharing most of its prompt."""
        while self._waiting and len(self._active) < self.max_batch:
            if not self._within_budget() and self._active:
                return   # the running requests fill the KV budget: the next one waits for a slot's memory
            stream = self._waiting.popleft()
            with self._lock:
                self.stats.waiting -= 1
                self.stats.running += 1
            prompt = stream.request.prompt
            if self._free:
                best = max(range(len(self._free)), key=lambda i: self._free[i].common_prefix(prompt))
                cache = self._free.pop(best)
            else:
                cache = self.model.new_cache(self.ctx)
                self._slots_made += 1
            reused = min(cache.common_prefix(prompt), len(prompt) - 1)  # the last token runs for its logits
            cache.truncate(reused)
            source, shared = self._longest_prefix(prompt)
            if shared >= reused + MIN_PREFIX_COPY:   # another sequence or a bookmark holds more: branch off it
                cache.copy_prefix(source, shared)
                reused = shared
                with self._lock:
                    self.stats.prefix_copies_total += 1
            seq = _Sequence(stream, cache, reused)
            self._active.append(seq)
            if stream.request.cancelled.is_set():
                self._end(seq, error=None, cancelled=True)

    def _within_budget(self) -> bool:
        """Drop cold KV caches (the least recently used bookmark, then the longest idle slot) until all of
        them fit ``kv_budget``; False when the running requests' caches alone exceed it."""
        while True:
            total = sum(c.nbytes for c in [s.cache for s in self._active] + self._free +
                        list(self._bookmarks.values()))
            over = self.kv_budget is not None and total > self.kv_budget
            if over and self._bookmarks:
                self._bookmarks.pop(next(iter(self._bookmarks)))
            elif over and self._free:
                self._free.pop(0)
            else:
                with self._lock:
                    self.stats.kv_bytes = total
                    self.stats.bookmarks = len(self._bookmarks)
                return not over
            with self._lock:
                self.stats.kv_evictions_total += 1

    def _longest_prefix(self, prompt: list[int]) -> tuple[Any, int]:
        """The running sequence's cache or bookmark sharing the longest prefix with ``prompt`` (at most all
        but its last token), and that length."""
        best, length = None, 0
        for cache in [seq.cache for seq in self._active] + list(self._bookmarks.values()):
            n = min(cache.common_prefix(prompt), len(prompt) - 1)
            if n > length:
                best, length = cache, n
        for name, kept in self._bookmarks.items():
            if kept is best:   # a bookmark in use is the most recently used
                self._bookmarks[name] = self._bookmarks.pop(name)
                break
        return best, length

    def _keep_bookmark(self, seq: _Sequence) -> None:
        """Keep a copy of ``seq``'s prompt keys and values under its bookmark name."""
        name, prompt = seq.request.bookmark, seq.request.prompt
        kept = self._bookmarks.pop(name, None)
        if kept is None or kept.tokens != list(prompt):
            if kept is None and len(self._bookmarks) >= self.max_bookmarks:
                self._bookmarks.pop(next(iter(self._bookmarks)))   # the least recently used
            kept = kept or self.model.new_cache(self.ctx)
            kept.copy_prefix(seq.cache, len(prompt))
        self._bookmarks[name] = kept
        with self._lock:
            self.stats.bookmarks = len(self._bookmarks)

    def _step(self) -> None:
        """One engine step: a prompt chunk for the oldest prefilling sequence, then a token for
        every decoding one."""
        prefilling = [seq for seq in self._active if seq.prefilling]
        if prefilling:
            self._prefill_chunk(prefilling[0])
        decoding = [seq for seq in self._active if not seq.prefilling]
        ready = []
        for seq in decoding:
            if seq.request.cancelled.is_set():
                self._finish_choice(seq, "cancelled", None)
                continue
            try:
                if self._sample(seq) and not self._speculate(seq):
                    ready.append(seq)
            except Exception as exc:   # a grammar that rejects, a broken sampler: this request only
                self._end(seq, error=exc)
        if ready:
            self._forward(ready)

    def _prefill_chunk(self, seq: _Sequence) -> None:
        if seq.request.cancelled.is_set():
            self._end(seq, error=None, cancelled=True)
            return
        chunk, seq.pending = seq.pending[:self.prefill_chunk], seq.pending[self.prefill_chunk:]
        try:
            logits = self.model.forward(chunk, seq.cache, last_only=True)
        except Exception as exc:
            self._end(seq, error=exc)
            return
        if seq.pending:
            return
        seq.prompt_logits = np.asarray(logits[-1], dtype=np.float32)
        seq.t_prompt = time.perf_counter() - seq.t_start
        with self._lock:
            self.stats.prompt_tokens_total += len(seq.request.prompt)
            self.stats.prompt_tokens_reused_total += seq.reused
        try:
            if seq.request.bookmark and self.max_bookmarks:
                self._keep_bookmark(seq)
            seq.start_choice(0, self.tokenizer)
        except Exception as exc:
            self._end(seq, error=exc)

    def _limit(self, seq: _Sequence) -> int:
        budget = self.ctx - len(seq.request.prompt)
        return budget if seq.request.max_tokens is None else min(seq.request.max_tokens, budget)

    def _sample(self, seq: _Sequence) -> bool:
        """Sample and emit ``seq``'s next token; True when the choice goes on (its token needs a
        forward pass)."""
        if seq.n_gen >= self._limit(seq):
            self._emit_tail(seq)
            self._finish_choice(seq, "length", None)
            return False
        mask = seq.constraint.mask() if seq.constraint is not None else None
        tid = int(seq.sampler.sample(seq.logits, seq.history, mask).id)
        return self._accept(seq, tid, seq.logits)

    def _accept(self, seq: _Sequence, tid: int, logits: np.ndarray) -> bool:
        """Emit ``tid`` (chosen from ``logits``) as ``seq``'s next token; True when the choice goes on."""
        req, stream, limit = seq.request, seq.stream, self._limit(seq)
        seq.n_gen += 1
        with self._lock:
            self.stats.generated_tokens_total += 1
        seq.history.append(tid)
        if seq.constraint is not None:
            seq.constraint.accept(tid)
        lp = self._logprobs(logits, tid, req.top_logprobs) if req.logprobs else None
        if tid in self.eos_ids:
            stream._put(TokenEvent(seq.index, seq.stops.flush(), [tid], [lp] if lp else []))
            self._finish_choice(seq, "stop", None)
            return False
        text, matched = seq.stops.feed(seq.detok.push(tid))
        stream._put(TokenEvent(seq.index, text, [tid], [lp] if lp else []))
        if matched is not None:
            self._finish_choice(seq, "stop", matched)
            return False
        if seq.constraint is not None and seq.constraint.is_terminated():
            self._emit_tail(seq)
            self._finish_choice(seq, "stop", None)
            return False
        if seq.n_gen >= limit:
            self._emit_tail(seq)
            self._finish_choice(seq, "length", None)
            return False
        seq.next_token = tid
        return True

    def _speculate(self, seq: _Sequence) -> bool:
        """Prompt-lookup decoding for a greedy choice: draft the tokens that followed the latest n-gram
        where it occurred before, run the sampled token and the draft in one forward pass, and keep the
        draft tokens greedy decoding would have chosen (so the output is the same as without it).
        False when no draft applies (the sequence then takes the ordinary step)."""
        spec, req = self.speculation, seq.request
        if spec is None or req.sampling.temperature > 0 or seq.constraint is not None:
            return False
        room = min(self._limit(seq) - seq.n_gen, seq.cache.free - 1)
        draft = spec.draft(seq.history, min(spec.max_draft, room))
        if not draft:
            return False
        start = seq.cache.length
        logits = self.model.forward([seq.next_token] + draft, seq.cache)
        accepted = 0
        going = True
        for i, token in enumerate(draft):
            if int(seq.sampler.sample(logits[i], seq.history, None).id) != token:
                break
            accepted += 1
            going = self._accept(seq, token, logits[i])
            if not going:
                break
        with self._lock:
            self.stats.draft_tokens_total += len(draft)
            self.stats.draft_tokens_accepted_total += accepted
        if going:
            seq.cache.truncate(start + 1 + accepted)   # drop the rejected draft's keys and values
            seq.logits = np.asarray(logits[accepted], dtype=np.float32)
        return True

    @staticmethod
    def _emit_tail(seq: _Sequence) -> None:
        tail = seq.stops.flush()
        if tail:
            seq.stream._put(TokenEvent(seq.index, tail, []))

    def _forward(self, ready: list[_Sequence]) -> None:
        """The next forward pass of every sequence in ``ready`` (batched where that is faster)."""
        tokens = [seq.next_token for seq in ready]
        try:
            if self._batched and len(ready) > 1:
                logits = self.model.decode_batch(tokens, [seq.cache for seq in ready])
                with self._lock:
                    self.stats.batch_steps_total += 1
                    self.stats.batched_sequences_total += len(ready)
                for seq, row in zip(ready, logits):
                    seq.logits = np.asarray(row, dtype=np.float32)
                return
        except Exception as exc:
            for seq in ready:
                self._end(seq, error=exc)
            return
        for seq, tid in zip(ready, tokens):
            try:
                seq.logits = np.asarray(self.model.forward([tid], seq.cache)[-1], dtype=np.float32)
            except Exception as exc:
                self._end(seq, error=exc)

    def _finish_choice(self, seq: _Sequence, reason: str, matched: Optional[str]) -> None:
        req = seq.request
        with self._lock:
            self.stats.finish_reasons[reason] = self.stats.finish_reasons.get(reason, 0) + 1
        now = time.perf_counter()
        timings = {"prompt_s": seq.t_prompt, "eval_s": now - seq.t_choice, "total_s": now - seq.t_start}
        seq.stream._put(FinishEvent(seq.index, reason, Usage(len(req.prompt), seq.n_gen), matched, timings))
        if reason != "cancelled" and seq.index + 1 < req.n:
            try:
                seq.start_choice(seq.index + 1, self.tokenizer)
            except Exception as exc:
                self._end(seq, error=exc)
            return
        self._end(seq, error=None, cancelled=reason == "cancelled")

    def _end(self, seq: _Sequence, error: Optional[BaseException], cancelled: bool = False) -> None:
        """Release ``seq``'s slot and close its stream (with ``error`` when it failed)."""
        if seq not in self._active:
            return
        self._active.remove(seq)
        if error is not None:
            seq.cache.truncate(0)   # what the failed pass wrote is not trusted
        self._free.append(seq.cache)
        dt = time.perf_counter() - seq.t_start
        with self._lock:
            self.stats.running -= 1
            self.stats.busy_seconds_total += dt
            if error is not None:
                self.stats.requests_failed += 1
            elif cancelled:
                self.stats.requests_cancelled += 1
            else:
                self._avg_seconds = 0.8 * self._avg_seconds + 0.2 * dt
        if error is not None:
            seq.stream._put(error)
        seq.stream._put(_END)

    def _run_call(self, fn, loop, future) -> None:
        with self._lock:
            self.stats.waiting -= 1
            self.stats.running += 1
        try:
            result, error = fn(), None
        except asyncio.CancelledError:   # ``fn`` saw that its caller went away
            result, error = None, None
            with self._lock:
                self.stats.requests_cancelled += 1
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
