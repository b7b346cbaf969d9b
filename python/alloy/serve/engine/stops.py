"""Stop-sequence matching on decoded text, across token boundaries, without leaking."""

from __future__ import annotations

from typing import Optional


class StopMatcher:
    """Feed decoded text deltas; get back text that is safe to emit.

    Text that could be the beginning of a stop string is held back until it either
    completes the stop (then it and everything after it is dropped) or diverges.
    """

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self._held = ""
        self.matched: Optional[str] = None

    def feed(self, delta: str) -> tuple[str, Optional[str]]:
        """Return ``(text_to_emit, matched_stop_or_None)``; after a match, feed no more."""
        if not self.stops:
            return delta, None
        buf = self._held + delta
        first = None
        for s in self.stops:
            i = buf.find(s)
            if i >= 0 and (first is None or i < first[0]):
                first = (i, s)
        if first is not None:
            self._held = ""
            self.matched = first[1]
            return buf[: first[0]], first[1]
        keep = self._partial_tail(buf)
        self._held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], None

    def flush(self) -> str:
        """Text still held back when generation ends without a match."""
        out, self._held = self._held, ""
        return out

    def _partial_tail(self, buf: str) -> int:
        """Length of the longest suffix of ``buf`` that is a proper prefix of some stop."""
        best = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), best, -1):
                if buf.endswith(s[:k]):
                    best = k
                    break
        return best
