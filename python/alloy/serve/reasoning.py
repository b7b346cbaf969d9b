"""Split ``<think>...</think>`` reasoning from the answer, streaming-safe.

Reasoning is recognised when the reply opens with the tag (leading whitespace allowed), or
from the first token when the chat template already opened it (``opened=True``).
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


def _partial(buf: str, tag: str) -> int:
    """Length of the longest suffix of ``buf`` that is a proper prefix of ``tag``."""
    for k in range(min(len(tag) - 1, len(buf)), 0, -1):
        if buf.endswith(tag[:k]):
            return k
    return 0


class ReasoningSplitter:
    def __init__(self, opened: bool = False):
        self._state = "think" if opened else "start"
        self._buf = ""

    def feed(self, delta: str) -> tuple[str, str]:
        """Return ``(reasoning_delta, content_delta)``."""
        self._buf += delta
        reasoning = content = ""
        if self._state == "start":
            s = self._buf.lstrip()
            if not s or (OPEN.startswith(s) and len(s) < len(OPEN)):
                return "", ""
            if s.startswith(OPEN):
                self._state, self._buf = "think", s[len(OPEN):]
            else:
                self._state = "content"
        if self._state == "think":
            i = self._buf.find(CLOSE)
            if i >= 0:
                reasoning, self._buf = self._buf[:i], self._buf[i + len(CLOSE):]
                self._state = "gap"
            else:
                keep = _partial(self._buf, CLOSE)
                reasoning = self._buf[: len(self._buf) - keep]
                self._buf = self._buf[len(self._buf) - keep:]
                return reasoning, ""
        if self._state == "gap":  # blank lines between the reasoning and the answer
            self._buf = self._buf.lstrip("\n")
            if not self._buf:
                return reasoning, ""
            self._state = "content"
        if self._state == "content":
            content, self._buf = self._buf, ""
        return reasoning, content

    def finish(self) -> tuple[str, str]:
        buf, self._buf = self._buf, ""
        if self._state == "think":
            return buf, ""
        return "", buf
