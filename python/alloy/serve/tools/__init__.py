"""Per-family tool-call parsers. ``parser_for(family)`` returns a fresh streaming parser."""

from __future__ import annotations

from . import gemma, hermes, llama3, mistral
from .base import ToolCall, ToolParser, calls_from_json

_FAMILIES = {
    "chatml": hermes.make_parser,
    "qwen": hermes.make_parser,
    "qwen2": hermes.make_parser,
    "qwen3": hermes.make_parser,
    "hermes": hermes.make_parser,
    "smollm": hermes.make_parser,
    "llama3": llama3.make_parser,
    "gemma": gemma.make_parser,
    "gemma3": gemma.make_parser,
    "mistral": mistral.make_parser,
}


def parser_for(family: str | None) -> ToolParser:
    """The tool-call parser of a chat-template family (Hermes-style for unknown ones)."""
    return _FAMILIES.get((family or "").lower(), hermes.make_parser)()


__all__ = ["ToolCall", "ToolParser", "calls_from_json", "parser_for"]
