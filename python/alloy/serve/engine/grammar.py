"""Constrained decoding with xgrammar: JSON object, JSON schema and tool-call grammars.

Each compiled grammar becomes a factory of per-choice :class:`GrammarConstraint` objects,
which hand the scheduler a bool mask over the vocabulary before every step.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any, Callable, Optional

import numpy as np

from .request import Constraint


class GrammarError(ValueError):
    """The schema or grammar could not be compiled (message says why)."""


class GrammarConstraint(Constraint):
    def __init__(self, compiled, n_vocab: int):
        import xgrammar as xgr

        self._xgr = xgr
        self._matcher = xgr.GrammarMatcher(compiled)
        self._n_vocab = n_vocab
        self._bitmask = xgr.allocate_token_bitmask(1, n_vocab)

    def mask(self) -> np.ndarray:
        self._matcher.fill_next_token_bitmask(self._bitmask)
        bits = self._bitmask[0].numpy().view(np.uint8)
        return np.unpackbits(bits, bitorder="little")[: self._n_vocab].astype(bool)

    def accept(self, token_id: int) -> None:
        if not self._matcher.accept_token(token_id):
            raise RuntimeError(f"grammar rejected sampled token {token_id}")

    def is_terminated(self) -> bool:
        return self._matcher.is_terminated()


def tool_call_schema(tools: list[dict], name: Optional[str] = None) -> dict:
    """JSON schema of one call ``{"name": ..., "arguments": {...}}`` to any (or the named) tool.

    ``tools`` are OpenAI-style ``{"type": "function", "function": {name, parameters}}``.
    """
    options = []
    for t in tools:
        fn = t["function"]
        if name is not None and fn["name"] != name:
            continue
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        options.append({"type": "object",
                        "properties": {"name": {"const": fn["name"]}, "arguments": params},
                        "required": ["name", "arguments"], "additionalProperties": False})
    if not options:
        raise GrammarError(f"no tool named {name!r}")
    return options[0] if len(options) == 1 else {"anyOf": options}


MAX_REPEAT = 1000
"""Largest ``{n,m}`` count a schema's regex ``pattern`` may use: the compiled grammar grows with it
(``(a|b){1,20000}`` took minutes to compile)."""
_QUANTIFIER = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")


def check_repetitions(schema: Any, where: str = "schema") -> None:
    """Refuse regex patterns in ``schema`` whose repetition counts exceed :data:`MAX_REPEAT`."""
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                for m in _QUANTIFIER.finditer(value):
                    if max(int(m.group(1)), int(m.group(2) or 0)) > MAX_REPEAT:
                        raise GrammarError(f"{where}.pattern: repetition {m.group(0)} exceeds {MAX_REPEAT}")
            else:
                check_repetitions(value, f"{where}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            check_repetitions(value, f"{where}[{i}]")


class GrammarFactory:
    """Compiles grammars for one tokenizer; compiled results are cached by source text."""

    def __init__(self, tokenizer, n_vocab: int, stop_token_ids: list[int]):
        self._tokenizer = tokenizer
        self._n_vocab = n_vocab
        self._stop_ids = stop_token_ids
        self._compiler = None
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get_compiler(self):
        if self._compiler is None:
            import xgrammar as xgr

            info = xgr.TokenizerInfo.from_huggingface(
                self._tokenizer.hf, vocab_size=self._n_vocab, stop_token_ids=self._stop_ids)
            self._compiler = xgr.GrammarCompiler(info)
        return self._compiler

    def _factory(self, key: str, compile_fn) -> Callable[[], Constraint]:
        with self._lock:
            compiled = self._cache.get(key)
            if compiled is None:
                try:
                    compiled = compile_fn(self._get_compiler())
                except Exception as exc:  # xgrammar raises RuntimeError/ValueError variants
                    raise GrammarError(str(exc).strip().splitlines()[0]) from None
                self._cache[key] = compiled
        return lambda: GrammarConstraint(compiled, self._n_vocab)

    def json_object(self) -> Callable[[], Constraint]:
        return self._factory("json", lambda c: c.compile_builtin_json_grammar())

    def json_schema(self, schema: dict) -> Callable[[], Constraint]:
        check_repetitions(schema)
        text = json.dumps(schema, sort_keys=True)
        return self._factory("schema:" + text, lambda c: c.compile_json_schema(
            text, any_whitespace=False, strict_mode=True))

    def tool_call(self, tools: list[dict], name: Optional[str] = None) -> Callable[[], Constraint]:
        return self.json_schema(tool_call_schema(tools, name))
