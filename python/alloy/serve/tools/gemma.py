"""Gemma style: Python calls in a ```tool_code block (``get_weather(city="Paris")``),
or a bare leading JSON call as in Llama 3."""

from __future__ import annotations

import ast
from typing import Optional

from .base import Marker, ToolCall, ToolParser, calls_from_json


def calls_from_python(text: str) -> Optional[list[ToolCall]]:
    """Parse ``f(a=1, b="x")`` lines (or a list of such calls) with literal keyword args."""
    text = text.strip()
    if not text:
        return None
    try:
        tree = ast.parse(text, mode="exec")
    except SyntaxError:
        return calls_from_json(text)
    nodes = []
    for stmt in tree.body:
        if not isinstance(stmt, ast.Expr):
            return None
        value = stmt.value
        nodes.extend(value.elts if isinstance(value, (ast.List, ast.Tuple)) else [value])
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        name = ast.unparse(node.func)
        try:
            args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            return None
        calls.append(ToolCall(name, args))
    return calls or None


def make_parser() -> ToolParser:
    return ToolParser([Marker("```tool_code", "```", calls_from_python),
                       Marker("```json", "```", calls_from_json)],
                      leading_json=True)
