"""Prometheus text metrics: HTTP requests by route and status, and the engine's counters."""

from __future__ import annotations

import threading
from collections import defaultdict

from .engine.scheduler import EngineStats


class HttpMetrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            self.seconds[(method, route)] += seconds


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(http: HttpMetrics, stats: EngineStats, model: str) -> str:
    lines = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]):
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lines.append(f"{name}{labels} {value}")

    with http._lock:
        reqs = sorted(http.requests.items())
        secs = sorted(http.seconds.items())
    metric("alloy_http_requests_total", "counter", "HTTP requests by route and status.",
           [(f'{{method="{m}",route="{_esc(r)}",status="{s}"}}', n) for (m, r, s), n in reqs])
    metric("alloy_http_request_seconds_total", "counter", "Time spent answering HTTP requests.",
           [(f'{{method="{m}",route="{_esc(r)}"}}', round(v, 6)) for (m, r), v in secs])
    lab = f'{{model="{_esc(model)}"}}'
    for name, kind, help_text, value in [
        ("alloy_requests_total", "counter", "Generation requests accepted.", stats.requests_total),
        ("alloy_requests_rejected_total", "counter", "Requests refused because the queue was full.",
         stats.requests_rejected),
        ("alloy_requests_cancelled_total", "counter", "Requests cancelled (client went away).",
         stats.requests_cancelled),
        ("alloy_requests_failed_total", "counter", "Requests that failed in the engine.",
         stats.requests_failed),
        ("alloy_prompt_tokens_total", "counter", "Prompt tokens processed.",
         stats.prompt_tokens_total),
        ("alloy_prompt_tokens_reused_total", "counter", "Prompt tokens served from the KV cache.",
         stats.prompt_tokens_reused_total),
        ("alloy_generated_tokens_total", "counter", "Tokens generated.",
         stats.generated_tokens_total),
        ("alloy_batch_steps_total", "counter", "Decode steps that ran several sequences in one pass.",
         stats.batch_steps_total),
        ("alloy_batched_sequences_total", "counter", "Sequence steps inside batched decode steps.",
         stats.batched_sequences_total),
        ("alloy_draft_tokens_total", "counter", "Tokens drafted by speculative decoding.",
         stats.draft_tokens_total),
        ("alloy_draft_tokens_accepted_total", "counter", "Drafted tokens that greedy decoding kept.",
         stats.draft_tokens_accepted_total),
        ("alloy_prefix_copies_total", "counter", "Prompts that branched off another sequence's or a bookmark's "
         "cached prefix.", stats.prefix_copies_total),
        ("alloy_kv_cache_bytes", "gauge", "Bytes the KV caches take (slots and bookmarks).", stats.kv_bytes),
        ("alloy_kv_evictions_total", "counter", "KV caches dropped to stay within --kv-budget.",
         stats.kv_evictions_total),
        ("alloy_bookmarks", "gauge", "Prompt prefixes kept warm under a bookmark name.", stats.bookmarks),
        ("alloy_engine_busy_seconds_total", "counter", "Time the engine spent on requests.",
         round(stats.busy_seconds_total, 6)),
        ("alloy_queue_waiting", "gauge", "Requests waiting in the queue.", stats.waiting),
        ("alloy_queue_running", "gauge", "Requests being generated.", stats.running),
    ]:
        metric(name, kind, help_text, [(lab, value)])
    metric("alloy_finish_reason_total", "counter", "Finished choices by reason.",
           [(f'{{model="{_esc(model)}",reason="{r}"}}', n)
            for r, n in sorted(stats.finish_reasons.items())])
    return "\n".join(lines) + "\n"
