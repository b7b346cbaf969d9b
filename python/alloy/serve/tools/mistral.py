"""Mistral style: ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]`` to the end."""

from .base import Marker, ToolParser, calls_from_json


def make_parser() -> ToolParser:
    # The call list runs to the end of the reply; "\x00" never appears, so the block is
    # closed by finish(), which parses what it holds.
    return ToolParser([Marker("[TOOL_CALLS]", "\x00", calls_from_json)])
