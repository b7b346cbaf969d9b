"""Streaming tool-call extraction from generated text (shared machinery).

A parser is fed text deltas and returns items: plain text that is safe to show, or
complete :class:`ToolCall` objects. Text that might start a tool-call marker is held
back until it is decided, so markers never leak into content.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional, Union


@dataclass
class ToolCall:
    name: str
    arguments: dict
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])


Item = Union[str, ToolCall]
BlockParser = Callable[[str], Optional[list[ToolCall]]]


def calls_from_json(text: str) -> Optional[list[ToolCall]]:
    """Parse ``{"name", "arguments"|"parameters"}`` objects (one, a list, or ``;``-separated)."""
    text = text.strip()
    if not text:
        return None
    try:
        objs = json.loads(text)
    except json.JSONDecodeError:
        try:
            objs = [json.loads(part) for part in text.split(";") if part.strip()]
        except json.JSONDecodeError:
            return None
    if isinstance(objs, dict):
        objs = [objs]
    if not isinstance(objs, list) or not objs:
        return None
    calls = []
    for obj in objs:
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            return None
        args = obj.get("arguments", obj.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                return None
        if not isinstance(args, dict):
            return None
        calls.append(ToolCall(obj["name"], args))
    return calls


@dataclass
class Marker:
    start: str
    end: str
    parse: BlockParser


class ToolParser:
    """Streaming extractor for marker-delimited calls and/or a bare leading JSON call.

    ``markers``: blocks like ``<tool_call>{...}</tool_call>``. ``leading_json``: when the
    whole output starts with ``{`` or ``[`` (after ``prefixes`` such as ``<|python_tag|>``),
    it is buffered and parsed as calls at the end (shown as text if it is not one).
    """

    def __init__(self, markers: list[Marker], leading_json: bool = False,
                 prefixes: tuple[str, ...] = ()):
        self.markers = markers
        self.leading_json = leading_json
        self.prefixes = prefixes
        self._buf = ""
        self._mode = "start"  # start | text | block | json
        self._block: Optional[Marker] = None
        self.calls: list[ToolCall] = []

    def feed(self, delta: str) -> list[Item]:
        self._buf += delta
        out: list[Item] = []
        while True:
            if self._mode == "start":
                if not self._decide_start():
                    return out
            elif self._mode == "json":
                return out
            elif self._mode == "text":
                if not self._scan_text(out):
                    return out
            elif self._mode == "block":
                if not self._scan_block(out):
                    return out

    def finish(self) -> list[Item]:
        out: list[Item] = []
        buf, self._buf = self._buf, ""
        if self._mode == "json":
            stripped = buf.strip()
            for p in self.prefixes:
                if stripped.startswith(p):
                    stripped = stripped[len(p):]
            calls = calls_from_json(stripped)
            if calls:
                self.calls += calls
                return list(calls)
            return [buf] if buf else []
        if self._mode == "block":
            assert self._block is not None
            calls = self._block.parse(buf)
            if calls:  # an unterminated but complete block (model stopped before the end tag)
                self.calls += calls
                return list(calls)
            return [self._block.start + buf]
        return [buf] if buf else []

    # -- states ----------------------------------------------------------------------------
    def _decide_start(self) -> bool:
        s = self._buf.lstrip()
        if not s:
            return False
        if self.leading_json:
            for p in self.prefixes:
                if p.startswith(s) and len(s) < len(p):
                    return False
                if s.startswith(p):
                    s = s[len(p):].lstrip()
                    if not s:
                        return False
            if s[0] in "{[":
                self._mode = "json"
                return False
        self._mode = "text"
        return True

    def _scan_text(self, out: list[Item]) -> bool:
        first = None
        for m in self.markers:
            i = self._buf.find(m.start)
            if i >= 0 and (first is None or i < first[0]):
                first = (i, m)
        if first is not None:
            i, m = first
            if i:
                out.append(self._buf[:i])
            self._buf = self._buf[i + len(m.start):]
            self._mode, self._block = "block", m
            return True
        keep = 0
        for m in self.markers:
            for k in range(min(len(m.start) - 1, len(self._buf)), keep, -1):
                if self._buf.endswith(m.start[:k]):
                    keep = k
                    break
        emit = self._buf[: len(self._buf) - keep]
        if emit:
            out.append(emit)
        self._buf = self._buf[len(self._buf) - keep:]
        return False

    def _scan_block(self, out: list[Item]) -> bool:
        assert self._block is not None
        m = self._block
        j = self._buf.find(m.end)
        if j < 0:
            return False
        body, self._buf = self._buf[:j], self._buf[j + len(m.end):]
        calls = m.parse(body)
        if calls:
            self.calls += calls
            out.extend(calls)
        else:
            out.append(m.start + body + m.end)
        self._mode, self._block = "text", None
        return True
