"""The Anthropic dialect: /v1/messages (streaming and not) and /v1/messages/count_tokens."""

from __future__ import annotations

import json
import uuid
from typing import Any, Optional

from aiohttp import web

from ..engine.request import Request
from .common import (ChoiceDelta, ChoiceEnd, Served, chat_events, check_fields, get, get_range,
                     json_response, read_json, sampling_from, send_sse, start_stream, stop_list,
                     tool_names)
from .errors import bad_field

_MESSAGE_FIELDS = {"model", "messages", "max_tokens", "system", "stop_sequences", "stream",
                   "temperature", "top_p", "top_k", "metadata", "tools", "tool_choice",
                   "thinking", "service_tier", "cache_control", "output_config", "speed",
                   "context_management"}
_COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking",
                 "cache_control", "output_config", "speed", "context_management"}
# The engine always runs at its one (full) effort: requests for at least "high" are met,
# requests to spend less are not something it can honour.
_EFFORTS_MET = {"high", "xhigh", "max"}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                 "cancelled": "end_turn"}


def _check_cache_control(value: Any, where: str) -> None:
    """``cache_control`` is a hint with no effect here, but it must be an object."""
    if value is not None and not isinstance(value, dict):
        raise bad_field(where, "expected an object like {type: 'ephemeral'}")


def _text_of(blocks: Any, where: str) -> str:
    """A string, or a list of text blocks (cache_control allowed: a hint with no effect)."""
    if isinstance(blocks, str):
        return blocks
    if not isinstance(blocks, list):
        raise bad_field(where, "expected a string or a list of text blocks")
    out = []
    for j, b in enumerate(blocks):
        if not isinstance(b, dict) or b.get("type") != "text":
            raise bad_field(f"{where}[{j}].type", "expected a text block")
        check_fields(b, {"type", "text", "cache_control", "citations"}, f"{where}[{j}].")
        out.append(_block_text(b, f"{where}[{j}]"))
    return "".join(out)


def _block_text(b: dict, where: str) -> str:
    text = b.get("text")
    if not isinstance(text, str):
        raise bad_field(where + ".text", "required string")
    _check_cache_control(b.get("cache_control"), where + ".cache_control")
    get(b, "citations", list, None, where + ".")
    return text


def parse_messages(messages: Any, system: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise bad_field("messages", "required non-empty list")
    out: list[dict] = []
    if system is not None:
        out.append({"role": "system", "content": _text_of(system, "system")})
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_field(where, "expected an object")
        check_fields(m, {"role", "content"}, where + ".")
        role = m.get("role")
        if role not in ("user", "assistant", "system"):
            raise bad_field(where + ".role", f"expected 'user' or 'assistant', got {role!r}")
        content = m.get("content")
        if role == "system":  # a mid-conversation system message
            out.append({"role": "system", "content": _text_of(content, where + ".content")})
            continue
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        if not isinstance(content, list):
            raise bad_field(where + ".content", "expected a string or a list of blocks")
        text, calls = [], []
        for j, b in enumerate(content):
            bw = f"{where}.content[{j}]"
            kind = b.get("type") if isinstance(b, dict) else None
            if kind == "text":
                check_fields(b, {"type", "text", "cache_control", "citations"}, bw + ".")
                text.append(_block_text(b, bw))
            elif kind in ("thinking", "redacted_thinking") and role == "assistant":
                for key in ("thinking", "signature", "data"):
                    get(b, key, str, None, bw + ".")
                continue  # earlier reasoning is not replayed into the prompt
            elif kind == "tool_use" and role == "assistant":
                if not isinstance(b.get("name"), str):
                    raise bad_field(bw + ".name", "tool_use needs a name (string)")
                args = get(b, "input", dict, {}, bw + ".")
                _check_cache_control(b.get("cache_control"), bw + ".cache_control")
                calls.append({"id": get(b, "id", str, "", bw + "."), "type": "function",
                              "function": {"name": b["name"], "arguments": args}})
            elif kind == "tool_result" and role == "user":
                result = b.get("content")
                result = "" if result is None else _text_of(result, bw + ".content")
                if get(b, "is_error", bool, False, bw + "."):
                    result = "Error: " + result
                _check_cache_control(b.get("cache_control"), bw + ".cache_control")
                out.append({"role": "tool", "content": result,
                            "tool_call_id": get(b, "tool_use_id", str, "", bw + ".")})
            else:
                raise bad_field(bw + ".type", f"content block {kind!r} is not supported here")
        if text or calls or role == "assistant":
            msg: dict = {"role": role, "content": "".join(text)}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
    return out


def parse_tools(tools: Any) -> Optional[list[dict]]:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad_field("tools", "expected a list")
    out = []
    for i, t in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise bad_field(where + ".name", "required string")
        if t.get("type") not in (None, "custom"):
            raise bad_field(where + ".type", f"server tool {t.get('type')!r} is not supported")
        check_fields(t, {"name", "description", "input_schema", "type", "cache_control"},
                     where + ".")
        schema = t.get("input_schema")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        if not isinstance(schema, dict):
            raise bad_field(where + ".input_schema", "expected a JSON schema object")
        _check_cache_control(t.get("cache_control"), where + ".cache_control")
        out.append({"type": "function", "function": {
            "name": t["name"], "description": get(t, "description", str, "", where + "."),
            "parameters": schema}})
    return out or None


class AnthropicApi:
    def __init__(self, served: Served):
        self.served = served

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/messages", self.messages),
                web.post("/v1/messages/count_tokens", self.count_tokens)]

    def _prepare(self, body: dict) -> tuple[list[int], str, str, Any, Optional[list[dict]]]:
        """→ (prompt tokens, prompt text, tools mode, constraint, tools)."""
        self.served.check_model(body.get("model"))
        messages = parse_messages(body.get("messages"), body.get("system"))
        tools = parse_tools(body.get("tools"))
        mode, constraint = "auto" if tools else "none", None
        choice = body.get("tool_choice")
        if choice is not None:
            if not isinstance(choice, dict):
                raise bad_field("tool_choice", "expected an object")
            check_fields(choice, {"type", "name", "disable_parallel_tool_use"}, "tool_choice.")
            get(choice, "disable_parallel_tool_use", bool, None, "tool_choice.")
            get(choice, "name", str, None, "tool_choice.")
            kind = choice.get("type")
            if kind == "none":
                mode, tools = "none", None
            elif kind in ("auto", "any", "tool") and not tools:
                raise bad_field("tool_choice", "requires tools")
            elif kind == "any":
                mode, constraint = "forced", self.served.grammar("tool_call", tools, None)
            elif kind == "tool":
                if choice.get("name") not in tool_names(tools):
                    raise bad_field("tool_choice.name", f"no tool named {choice.get('name')!r}")
                mode = "forced"
                constraint = self.served.grammar("tool_call", tools, choice["name"])
            elif kind != "auto":
                raise bad_field("tool_choice.type", f"unknown type {kind!r}")
        if body.get("speed") not in (None, "standard"):
            raise bad_field("speed", "only 'standard' is supported")
        config = get(body, "output_config", dict, {})
        check_fields(config, {"format", "effort"}, "output_config.")
        if config.get("effort") not in (None, *_EFFORTS_MET):
            raise bad_field("output_config.effort", f"effort {config['effort']!r} is not "
                                                    f"supported (the engine runs at full effort)")
        self._check_context_management(body.get("context_management"))
        fmt = config.get("format")
        if fmt is not None:
            if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or \
                    not isinstance(fmt.get("schema"), dict):
                raise bad_field("output_config.format", "expected {type: 'json_schema', schema}")
            if constraint is not None:
                raise bad_field("output_config.format", "cannot be combined with a forced "
                                                        "tool_choice")
            constraint = self.served.grammar("json_schema", fmt["schema"])
        _check_cache_control(body.get("cache_control"), "cache_control")
        kw = {}
        thinking = body.get("thinking")
        if thinking is not None:
            kind = thinking.get("type") if isinstance(thinking, dict) else None
            if isinstance(thinking, dict):
                get_range(thinking, "budget_tokens", int, 0, 1 << 30, None, "thinking.")
            if kind in ("enabled", "between_tools"):
                if not self.served.can_think():
                    raise bad_field("thinking", f"model {self.served.name!r} does not think")
                kw["enable_thinking"] = True
            elif kind == "adaptive":
                pass  # the model decides: its template's default
            elif kind == "disabled":
                kw["enable_thinking"] = False
            else:
                raise bad_field("thinking.type", f"unknown thinking type {kind!r}")
        prompt, text = self.served.chat_prompt(messages, tools, **kw)
        return prompt, text, mode, constraint, tools

    @staticmethod
    def _check_context_management(cm: Any) -> None:
        """Only thinking-clearing edits are accepted: earlier thinking is never replayed."""
        if cm is None:
            return
        if not isinstance(cm, dict):
            raise bad_field("context_management", "expected an object")
        check_fields(cm, {"edits"}, "context_management.")
        for i, edit in enumerate(get(cm, "edits", list, [], "context_management.")):
            kind = edit.get("type") if isinstance(edit, dict) else None
            if not isinstance(kind, str) or not kind.startswith("clear_thinking_"):
                raise bad_field(f"context_management.edits[{i}].type",
                                f"context edit {kind!r} is not supported")

    async def count_tokens(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        check_fields(body, _COUNT_FIELDS)
        prompt, *_ = await self.served.off_loop(self._prepare, body)
        return json_response({"input_tokens": len(prompt)})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        check_fields(body, _MESSAGE_FIELDS)
        if body.get("max_tokens") is None:
            raise bad_field("max_tokens", "required")
        max_tokens = get_range(body, "max_tokens", int, 1, 1 << 30, None)
        if body.get("service_tier") not in (None, "auto", "standard_only"):
            raise bad_field("service_tier", "expected 'auto' or 'standard_only'")
        if body.get("metadata") is not None:
            check_fields(get(body, "metadata", dict), {"user_id"}, "metadata.")
            get(body["metadata"], "user_id", str, None, "metadata.")
        stream_out = get(body, "stream", bool, False)
        sampling = sampling_from({k: body[k] for k in ("top_p", "top_k") if k in body},
                                 temperature=get_range(body, "temperature", float, 0.0, 1.0, 1.0))
        stops = stop_list(body.get("stop_sequences"), "stop_sequences")
        prompt, text, mode, constraint, _ = await self.served.off_loop(self._prepare, body)
        req = Request(prompt=prompt, max_tokens=max_tokens, sampling=sampling, stop=stops,
                      constraint_factory=constraint)
        stream = await self.served.submit(req)
        events = chat_events(self.served, stream, tools_mode=mode, prompt_text=text)
        mid = "msg_" + uuid.uuid4().hex[:24]
        try:
            if stream_out:
                return await self._stream(request, events, mid, len(prompt))
            return await self._full(events, mid, len(prompt))
        finally:
            stream.cancel()

    def _message(self, mid: str, content: list, n_prompt: int, n_out: int,
                 end: Optional[ChoiceEnd]) -> dict:
        return {"id": mid, "type": "message", "role": "assistant", "model": self.served.name,
                "content": content,
                "stop_reason": _stop_reason(end) if end else None,
                "stop_sequence": end.stop_string if end else None,
                "usage": {"input_tokens": n_prompt, "output_tokens": n_out,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}

    async def _full(self, events, mid: str, n_prompt: int) -> web.Response:
        thinking = text = ""
        end: Optional[ChoiceEnd] = None
        async for ev in events:
            if isinstance(ev, ChoiceDelta):
                thinking += ev.reasoning
                text += ev.content
            else:
                end = ev
        assert end is not None
        content: list[dict] = []
        if thinking:
            content.append({"type": "thinking", "thinking": thinking, "signature": ""})
        if text or not end.tool_calls:
            content.append({"type": "text", "text": text})
        for call in end.tool_calls:
            content.append({"type": "tool_use", "id": _tool_id(call.id), "name": call.name,
                            "input": call.arguments})
        return json_response(self._message(mid, content, n_prompt,
                                           end.usage.completion_tokens, end))

    async def _stream(self, request, events, mid: str, n_prompt: int) -> web.StreamResponse:
        resp = await start_stream(request, "text/event-stream")
        await send_sse(resp, {"type": "message_start",
                              "message": self._message(mid, [], n_prompt, 0, None)},
                       "message_start")
        index = -1
        open_kind: Optional[str] = None

        async def open_block(kind: str, block: dict):
            nonlocal index, open_kind
            if open_kind is not None:
                await close_block()
            index += 1
            open_kind = kind
            await send_sse(resp, {"type": "content_block_start", "index": index,
                                  "content_block": block}, "content_block_start")

        async def close_block():
            nonlocal open_kind
            if open_kind == "thinking":
                await send_sse(resp, {"type": "content_block_delta", "index": index,
                                      "delta": {"type": "signature_delta", "signature": ""}},
                               "content_block_delta")
            await send_sse(resp, {"type": "content_block_stop", "index": index},
                           "content_block_stop")
            open_kind = None

        async def delta(kind: str, payload: dict):
            await send_sse(resp, {"type": "content_block_delta", "index": index,
                                  "delta": dict(type=kind, **payload)}, "content_block_delta")

        end: Optional[ChoiceEnd] = None
        async for ev in events:
            if isinstance(ev, ChoiceEnd):
                end = ev
                continue
            if ev.reasoning:
                if open_kind != "thinking":
                    await open_block("thinking", {"type": "thinking", "thinking": "",
                                                  "signature": ""})
                await delta("thinking_delta", {"thinking": ev.reasoning})
            if ev.content:
                if open_kind != "text":
                    await open_block("text", {"type": "text", "text": ""})
                await delta("text_delta", {"text": ev.content})
            for call in ev.tool_calls:
                await open_block("tool_use", {"type": "tool_use", "id": _tool_id(call.id),
                                              "name": call.name, "input": {}})
                await delta("input_json_delta", {"partial_json": json.dumps(call.arguments)})
        assert end is not None
        if index < 0:
            await open_block("text", {"type": "text", "text": ""})
        if open_kind is not None:
            await close_block()
        await send_sse(resp, {"type": "message_delta",
                              "delta": {"stop_reason": _stop_reason(end),
                                        "stop_sequence": end.stop_string},
                              "usage": {"output_tokens": end.usage.completion_tokens}},
                       "message_delta")
        await send_sse(resp, {"type": "message_stop"}, "message_stop")
        await resp.write_eof()
        return resp


def _stop_reason(end: ChoiceEnd) -> str:
    if end.stop_string is not None:
        return "stop_sequence"
    return _STOP_REASONS.get(end.reason, "end_turn")


def _tool_id(call_id: str) -> str:
    return "toolu_" + call_id.removeprefix("call_")
