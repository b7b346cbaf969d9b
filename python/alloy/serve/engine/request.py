"""The unified request every API dialect is parsed into, and the events the engine streams back.

Dialect adapters (``api/``) build a :class:`Request`; the scheduler answers with an async
stream of :class:`TokenEvent` and :class:`FinishEvent` per choice. Nothing here knows HTTP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

class Constraint:
    """A per-choice decoding constraint: the per-step logits mask hook.

    Before each step the scheduler asks ``mask()`` for a bool array over the vocabulary
    (True = allowed; None = unconstrained) and after sampling calls ``accept(token_id)``.
    Implementations live in ``engine/grammar.py``.
    """

    def mask(self) -> Any:  # numpy bool array [n_vocab] or None
        raise NotImplementedError

    def accept(self, token_id: int) -> None:
        raise NotImplementedError

    def is_terminated(self) -> bool:
        raise NotImplementedError


@dataclass
class Sampling:
    """Sampling settings of one request (mapped onto the model side's SamplingParams)."""

    temperature: float = 0.8
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    seed: Optional[int] = None
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)


@dataclass
class Request:
    """One generation request, dialect-neutral.

    ``prompt`` is the full token sequence (chat template already applied). ``max_tokens`` is
    the per-choice generation cap (None = up to the context). ``stop`` strings are matched on
    decoded text across token boundaries and never emitted. ``n`` choices share the prompt
    prefill. ``constraint_factory`` builds a fresh :class:`Constraint` per choice. ``bookmark`` names
    the prompt's prefix to keep warm: its keys and values are kept under that name once prefilled.
    """

    prompt: list[int]
    max_tokens: Optional[int] = None
    sampling: Sampling = field(default_factory=Sampling)
    stop: list[str] = field(default_factory=list)
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    constraint_factory: Optional[Callable[[], Constraint]] = None
    bookmark: Optional[str] = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]] = field(default_factory=list)


@dataclass
class TokenEvent:
    """New visible text of choice ``index`` (may be empty while a stop string is pending)."""

    index: int
    text: str
    token_ids: list[int]
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class FinishEvent:
    """Choice ``index`` ended: ``reason`` is "stop" (EOS / stop string / grammar end),
    "length" (max_tokens or context) or "cancelled"; ``stop_string`` is the matched stop.
    ``usage`` counts this choice's generated tokens and the (shared) prompt."""

    index: int
    reason: str
    usage: Usage
    stop_string: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)


Event = TokenEvent | FinishEvent
