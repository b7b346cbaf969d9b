"""Llama 3.x style: the reply is a bare JSON call ``{"name": ..., "parameters": {...}}``,
optionally after ``<|python_tag|>``; several calls may be separated by ``;``."""

from .base import ToolParser


def make_parser() -> ToolParser:
    return ToolParser([], leading_json=True, prefixes=("<|python_tag|>",))
