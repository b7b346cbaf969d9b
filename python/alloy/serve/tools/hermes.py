"""Hermes / Qwen / ChatML style: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``."""

from .base import Marker, ToolParser, calls_from_json


def make_parser() -> ToolParser:
    return ToolParser([Marker("<tool_call>", "</tool_call>", calls_from_json)])
