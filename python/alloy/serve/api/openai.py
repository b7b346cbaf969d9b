"""The OpenAI dialect: /v1/chat/completions, /v1/completions, /v1/models, /v1/embeddings."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from typing import Any, Optional

import numpy as np
from aiohttp import web

from ..engine.request import Request, TokenLogprob
from .common import (ChoiceDelta, ChoiceEnd, Served, chat_events, check_fields, get,
                     get_range, json_response, logit_bias_from, normalize_tools, read_json,
                     sampling_from, send_sse, start_stream, stop_list, tool_names)
from .errors import ApiError, bad_field

_SAMPLING = ("temperature", "top_p", "top_k", "min_p", "seed", "repetition_penalty",
             "presence_penalty", "frequency_penalty", "logit_bias")
_CHAT_FIELDS = {"model", "messages", "stream", "stream_options", "max_tokens",
                "max_completion_tokens", "n", "stop", "logprobs", "top_logprobs",
                "response_format", "tools", "tool_choice", "parallel_tool_calls", "user",
                "store", "metadata", *_SAMPLING}
_COMPLETION_FIELDS = {"model", "prompt", "stream", "stream_options", "max_tokens", "n", "stop",
                      "logprobs", "echo", "best_of", "suffix", "user", *_SAMPLING}


def _message_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                raise bad_field(f"{where}[{j}]", "expected a content part object "
                                                 "{type: 'text', text}")
            if part.get("type") != "text":
                raise bad_field(f"{where}[{j}].type", f"content part {part.get('type')!r} is not "
                                                      f"supported (text only)")
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_field(f"{where}[{j}].text", "required string")
            parts.append(text)
        return "".join(parts)
    raise bad_field(where, "expected a string or a list of content parts")


def is_token_list(value: Any) -> bool:
    """A list of plain integers (JSON booleans are not token ids)."""
    return isinstance(value, list) and all(isinstance(t, int) and not isinstance(t, bool)
                                           for t in value)


def check_text(text: str, field_name: str) -> str:
    """``text`` if the tokenizer can take it: JSON can escape lone surrogates ("\\ud800"),
    which are no Unicode text."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_field(field_name, "is not valid Unicode (it has a lone surrogate)") from None
    return text


def check_token_ids(tokens: list[int], n_vocab: int, field_name: str) -> None:
    bad = next((t for t in tokens if not 0 <= t < n_vocab), None)
    if bad is not None:
        raise bad_field(field_name, f"token id {bad} is outside the vocabulary [0, {n_vocab})")


def _tool_call(c: Any, where: str) -> dict:
    """An assistant message's ``{id, type, function: {name, arguments}}`` (arguments: a JSON
    object or its text) → the template's ``{id, type, function: {name, arguments: dict}}``."""
    if not isinstance(c, dict):
        raise bad_field(where, "expected a tool call object {id, type, function}")
    if c.get("type") not in (None, "function"):
        raise bad_field(where + ".type", "only 'function' tool calls are supported")
    fn = c.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad_field(where + ".function", "expected {name, arguments}")
    args = fn.get("arguments")
    if args is None or args == "":
        args = {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except (json.JSONDecodeError, RecursionError):
            raise bad_field(where + ".function.arguments", "not valid JSON") from None
    if not isinstance(args, dict):
        raise bad_field(where + ".function.arguments", "expected a JSON object (or its JSON text)")
    return {"id": get(c, "id", str, "", where + "."), "type": "function",
            "function": {"name": fn["name"], "arguments": args}}


def parse_messages(messages: Any) -> list[dict]:
    if not isinstance(messages, list) or not messages:
        raise bad_field("messages", "required non-empty list")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad_field(where, "expected an object")
        role = m.get("role")
        if role not in ("system", "developer", "user", "assistant", "tool"):
            raise bad_field(where + ".role", f"unknown role {role!r}")
        check_fields(m, {"role", "content", "name", "tool_calls", "tool_call_id", "refusal",
                         "reasoning_content"}, where + ".")
        msg: dict = {"role": "system" if role == "developer" else role,
                     "content": _message_text(m.get("content"), where + ".content")}
        name = get(m, "name", str, None, where + ".")
        if name:
            msg["name"] = name
        for key in ("refusal", "reasoning_content"):  # accepted, not replayed into the prompt
            get(m, key, str, None, where + ".")
        call_id = get(m, "tool_call_id", str, "", where + ".")
        if role == "tool":
            msg["tool_call_id"] = call_id
        calls = get(m, "tool_calls", list, None, where + ".")
        if calls:
            msg["tool_calls"] = [_tool_call(c, f"{where}.tool_calls[{k}]")
                                 for k, c in enumerate(calls)]
        out.append(msg)
    return out


def _logprob_json(lp: TokenLogprob) -> dict:
    return {"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes,
            "top_logprobs": [{"token": t, "logprob": v, "bytes": b} for t, v, b in lp.top]}


def _tool_call_json(call, index: Optional[int] = None) -> dict:
    out = {"id": call.id, "type": "function",
           "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
    if index is not None:
        out["index"] = index
    return out


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


class OpenAIApi:
    def __init__(self, served: Served):
        self.served = served

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/chat/completions", self.chat),
                web.post("/v1/completions", self.completions),
                web.get("/v1/models", self.models),
                web.get("/v1/models/{model:.+}", self.model),
                web.post("/v1/embeddings", self.embeddings)]

    # -- models ----------------------------------------------------------------------------
    def _model_card(self) -> dict:
        return {"id": self.served.name, "object": "model", "created": self.served.created,
                "owned_by": "alloy"}

    async def models(self, request: web.Request) -> web.Response:
        return json_response({"object": "list", "data": [self._model_card()]})

    async def model(self, request: web.Request) -> web.Response:
        self.served.check_model(request.match_info["model"])
        return json_response(self._model_card())

    # -- shared request pieces -------------------------------------------------------------
    def _common(self, body: dict, default_temperature: float = 1.0) -> dict:
        n = get_range(body, "n", int, 1, 16, 1)
        stream = get(body, "stream", bool, False)
        opts = get(body, "stream_options", dict, {})
        check_fields(opts, {"include_usage", "continuous_usage_stats"}, "stream_options.")
        include_usage = get(opts, "include_usage", bool, False, "stream_options.")
        if get(opts, "continuous_usage_stats", bool, False, "stream_options."):
            raise bad_field("stream_options.continuous_usage_stats", "unsupported parameter")
        if opts and not stream:
            raise bad_field("stream_options", "only allowed when stream is true")
        get(body, "user", str)
        sampling = sampling_from(body, temperature=default_temperature)
        sampling.logit_bias = logit_bias_from(body.get("logit_bias"),
                                              self.served.model.config.n_vocab)
        return {"n": n, "stream": stream, "include_usage": include_usage,
                "sampling": sampling, "stop": stop_list(body.get("stop"), "stop")}

    # -- chat ------------------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        check_fields(body, _CHAT_FIELDS)
        self.served.check_model(body.get("model"))
        if get(body, "store", bool, False):
            raise bad_field("store", "storing completions is not supported")
        for key, value in get(body, "metadata", dict, {}).items():
            if not isinstance(value, str):
                raise bad_field(f"metadata.{key}", "values must be strings")
        messages = parse_messages(body.get("messages"))
        c = self._common(body)
        max_tokens = get_range(body, "max_completion_tokens", int, 1, 1 << 30, None)
        legacy_max = get_range(body, "max_tokens", int, 1, 1 << 30, None)
        if max_tokens is None:
            max_tokens = legacy_max
        logprobs = get(body, "logprobs", bool, False)
        top_logprobs = get_range(body, "top_logprobs", int, 0, 20, 0)
        if top_logprobs and not logprobs:
            raise bad_field("top_logprobs", "requires logprobs: true")
        tools = normalize_tools(body.get("tools"))
        tools_mode, constraint, tools = self._tool_choice(body.get("tool_choice"), tools)
        parallel = get(body, "parallel_tool_calls", bool, True)
        fmt = self._response_format(body.get("response_format"))
        if fmt is not None:
            if constraint is not None:
                raise bad_field("response_format", "cannot be combined with a forced tool_choice")
            constraint = fmt
        prompt, text = await self.served.off_loop(self.served.chat_prompt, messages, tools)
        req = Request(prompt=prompt, max_tokens=self.served.max_tokens(max_tokens),
                      sampling=c["sampling"], stop=c["stop"], n=c["n"], logprobs=logprobs,
                      top_logprobs=top_logprobs, constraint_factory=constraint)
        stream = await self.served.submit(req)
        rid = "chatcmpl-" + uuid.uuid4().hex[:24]
        events = chat_events(self.served, stream, tools_mode=tools_mode, prompt_text=text,
                             n=c["n"])
        try:
            if c["stream"]:
                return await self._chat_stream(request, events, rid, c["include_usage"],
                                               len(prompt), parallel)
            return await self._chat_full(events, rid, len(prompt), c["n"], logprobs, parallel)
        finally:
            stream.cancel()

    def _tool_choice(self, choice: Any, tools: Optional[list[dict]]):
        """→ (tools_mode, constraint factory or None, tools to show the model)."""
        if choice is None:
            return ("auto" if tools else "none"), None, tools
        name = None
        if isinstance(choice, dict):
            check_fields(choice, {"type", "function"}, "tool_choice.")
            if choice.get("type") != "function":
                raise bad_field("tool_choice.type", "expected 'function'")
            fn = choice.get("function")
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise bad_field("tool_choice.function", "expected {name: <tool name>}")
            check_fields(fn, {"name"}, "tool_choice.function.")
            name = fn["name"]
        elif choice not in ("none", "auto", "required"):
            raise bad_field("tool_choice", "expected 'none', 'auto', 'required' or "
                                           "{type: 'function', function: {name}}")
        if choice == "none":
            return "none", None, None
        if not tools:
            raise bad_field("tool_choice", "requires tools")
        if choice == "auto":
            return "auto", None, tools
        if choice == "required":
            return "forced", self.served.grammar("tool_call", tools, None), tools
        if name not in tool_names(tools):
            raise bad_field("tool_choice.function.name", f"no tool named {name!r} in tools")
        return "forced", self.served.grammar("tool_call", tools, name), tools

    def _response_format(self, fmt: Any):
        if fmt is None:
            return None
        if not isinstance(fmt, dict):
            raise bad_field("response_format", "expected an object")
        check_fields(fmt, {"type", "json_schema"}, "response_format.")
        kind = fmt.get("type")
        if kind == "text":
            return None
        if kind == "json_object":
            return self.served.grammar("json_object")
        if kind == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
                raise bad_field("response_format.json_schema.schema", "required JSON schema object")
            check_fields(spec, {"name", "schema", "strict", "description"},
                         "response_format.json_schema.")
            w = "response_format.json_schema."
            get(spec, "name", str, None, w), get(spec, "description", str, None, w)
            get(spec, "strict", bool, None, w)
            return self.served.grammar("json_schema", spec["schema"])
        raise bad_field("response_format.type", f"unsupported type {kind!r}")

    async def _chat_full(self, events, rid: str, n_prompt: int, n: int, logprobs: bool,
                         parallel: bool) -> web.Response:
        content = [""] * n
        reasoning = [""] * n
        lps: list[list] = [[] for _ in range(n)]
        ends: dict[int, ChoiceEnd] = {}
        async for ev in events:
            if isinstance(ev, ChoiceDelta):
                content[ev.index] += ev.content
                reasoning[ev.index] += ev.reasoning
                lps[ev.index] += ev.logprobs
            else:
                ends[ev.index] = ev
        choices = []
        for i in range(n):
            end = ends[i]
            calls = end.tool_calls if parallel else end.tool_calls[:1]
            msg: dict = {"role": "assistant", "content": content[i] or (None if calls else ""),
                         "refusal": None}
            if reasoning[i]:
                msg["reasoning_content"] = reasoning[i]
            if calls:
                msg["tool_calls"] = [_tool_call_json(c) for c in calls]
            choices.append({"index": i, "message": msg, "finish_reason": end.reason,
                            "logprobs": {"content": [_logprob_json(lp) for lp in lps[i]],
                                         "refusal": None} if logprobs else None})
        completion = sum(e.usage.completion_tokens for e in ends.values())
        return json_response({"id": rid, "object": "chat.completion", "created": int(time.time()),
                              "model": self.served.name, "system_fingerprint": "alloy",
                              "choices": choices, "usage": _usage(n_prompt, completion)})

    async def _chat_stream(self, request, events, rid: str, include_usage: bool, n_prompt: int,
                           parallel: bool) -> web.StreamResponse:
        resp = await start_stream(request, "text/event-stream")
        created = int(time.time())
        base = {"id": rid, "object": "chat.completion.chunk", "created": created,
                "model": self.served.name, "system_fingerprint": "alloy"}
        started: set[int] = set()
        n_calls: dict[int, int] = {}
        completion = 0

        async def chunk(index, delta, finish=None, logprobs=None):
            data = dict(base, choices=[{"index": index, "delta": delta, "logprobs": logprobs,
                                        "finish_reason": finish}])
            if include_usage:
                data["usage"] = None
            await send_sse(resp, data)

        async for ev in events:
            if ev.index not in started:
                started.add(ev.index)
                await chunk(ev.index, {"role": "assistant", "content": ""})
            if isinstance(ev, ChoiceDelta):
                delta: dict = {}
                if ev.reasoning:
                    delta["reasoning_content"] = ev.reasoning
                if ev.content:
                    delta["content"] = ev.content
                calls = []
                for call in ev.tool_calls:
                    k = n_calls.get(ev.index, 0)
                    if k and not parallel:
                        continue
                    n_calls[ev.index] = k + 1
                    calls.append(_tool_call_json(call, k))
                if calls:
                    delta["tool_calls"] = calls
                lp = ({"content": [_logprob_json(x) for x in ev.logprobs], "refusal": None}
                      if ev.logprobs else None)
                if delta or lp:
                    await chunk(ev.index, delta, logprobs=lp)
            else:
                completion += ev.usage.completion_tokens
                await chunk(ev.index, {}, finish=ev.reason)
        if include_usage:
            await send_sse(resp, dict(base, choices=[], usage=_usage(n_prompt, completion)))
        await send_sse(resp, "[DONE]")
        await resp.write_eof()
        return resp

    # -- legacy completions ----------------------------------------------------------------
    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        check_fields(body, _COMPLETION_FIELDS)
        self.served.check_model(body.get("model"))
        if get(body, "echo", bool, False):
            raise bad_field("echo", "echoing the prompt is not supported")
        if get(body, "suffix", str, ""):
            raise bad_field("suffix", "insertion (suffix) is not supported")
        if get(body, "best_of", int, 1) != 1:
            raise bad_field("best_of", "only best_of=1 is supported")
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, str):
            tokens = await self.served.off_loop(self.served.text_tokens, check_text(prompt, "prompt"))
        elif is_token_list(prompt) and prompt:
            tokens = list(prompt)
            check_token_ids(tokens, self.served.model.config.n_vocab, "prompt")
        else:
            raise bad_field("prompt", "expected one string or one list of token ids")
        if not tokens:
            raise bad_field("prompt", "is empty")
        c = self._common(body)
        max_tokens = get_range(body, "max_tokens", int, 1, 1 << 30, 16)
        top = get_range(body, "logprobs", int, 0, 5, None)
        req = Request(prompt=tokens, max_tokens=max_tokens, sampling=c["sampling"],
                      stop=c["stop"], n=c["n"], logprobs=top is not None,
                      top_logprobs=top or 0)
        stream = await self.served.submit(req)
        rid = "cmpl-" + uuid.uuid4().hex[:24]
        try:
            if c["stream"]:
                return await self._completions_stream(request, stream, rid, c["include_usage"],
                                                      len(tokens))
            return await self._completions_full(stream, rid, len(tokens), c["n"], top)
        finally:
            stream.cancel()

    @staticmethod
    def _legacy_logprobs(lps: list[TokenLogprob], offset: int) -> dict:
        offsets, pos = [], offset
        for lp in lps:
            offsets.append(pos)
            pos += len(lp.token)
        return {"tokens": [lp.token for lp in lps], "token_logprobs": [lp.logprob for lp in lps],
                "top_logprobs": [{t: v for t, v, _ in lp.top} for lp in lps],
                "text_offset": offsets}

    async def _completions_full(self, stream, rid, n_prompt, n, top) -> web.Response:
        text = [""] * n
        lps: list[list] = [[] for _ in range(n)]
        ends = {}
        async for ev in stream:
            if hasattr(ev, "text"):
                text[ev.index] += ev.text
                lps[ev.index] += ev.logprobs
            else:
                ends[ev.index] = ev
        choices = [{"index": i, "text": text[i], "finish_reason": ends[i].reason,
                    "logprobs": self._legacy_logprobs(lps[i], 0) if top is not None else None}
                   for i in range(n)]
        completion = sum(e.usage.completion_tokens for e in ends.values())
        return json_response({"id": rid, "object": "text_completion", "created": int(time.time()),
                              "model": self.served.name, "choices": choices,
                              "usage": _usage(n_prompt, completion)})

    async def _completions_stream(self, request, stream, rid, include_usage, n_prompt):
        resp = await start_stream(request, "text/event-stream")
        base = {"id": rid, "object": "text_completion", "created": int(time.time()),
                "model": self.served.name}
        completion = 0
        async for ev in stream:
            if hasattr(ev, "text"):
                if not ev.text and not ev.logprobs:
                    continue
                choice = {"index": ev.index, "text": ev.text, "finish_reason": None,
                          "logprobs": self._legacy_logprobs(ev.logprobs, 0) if ev.logprobs
                          else None}
            else:
                completion += ev.usage.completion_tokens
                choice = {"index": ev.index, "text": "", "finish_reason": ev.reason,
                          "logprobs": None}
            data = dict(base, choices=[choice])
            if include_usage:
                data["usage"] = None
            await send_sse(resp, data)
        if include_usage:
            await send_sse(resp, dict(base, choices=[], usage=_usage(n_prompt, completion)))
        await send_sse(resp, "[DONE]")
        await resp.write_eof()
        return resp

    # -- embeddings ------------------------------------------------------------------------
    async def embeddings(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        check_fields(body, {"model", "input", "encoding_format", "dimensions", "user"})
        self.served.check_model(body.get("model"))
        get(body, "user", str)
        fmt = get(body, "encoding_format", str, "float")
        if fmt not in ("float", "base64"):
            raise bad_field("encoding_format", "expected 'float' or 'base64'")
        dims = get_range(body, "dimensions", int, 1, self.served.model.config.n_embd, None)
        inputs = await self.served.off_loop(embedding_inputs, self.served, body.get("input"), "input")
        vectors = await embed(self.served, inputs, dims)
        data = []
        for i, v in enumerate(vectors):
            emb: Any = (base64.b64encode(np.asarray(v, np.float32).tobytes()).decode()
                        if fmt == "base64" else [float(x) for x in v])
            data.append({"object": "embedding", "index": i, "embedding": emb})
        n_tok = sum(len(t) for t in inputs)
        return json_response({"object": "list", "data": data, "model": self.served.name,
                              "usage": {"prompt_tokens": n_tok, "total_tokens": n_tok}})


def embedding_inputs(served: Served, value: Any, field_name: str) -> list[list[int]]:
    """Strings, a token list, or token lists → token lists (each non-empty, within ctx)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise bad_field(field_name, "expected a string or a non-empty list")
    if is_token_list(value):
        value = [value]
    out = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            tokens = served.text_tokens(check_text(item, f"{field_name}[{i}]"))
        elif is_token_list(item):
            tokens = list(item)
            check_token_ids(tokens, served.model.config.n_vocab, f"{field_name}[{i}]")
        else:
            raise bad_field(f"{field_name}[{i}]", "expected a string or a list of token ids")
        if not tokens:
            raise bad_field(f"{field_name}[{i}]", "is empty")
        if len(tokens) > served.ctx:
            raise ApiError("invalid_request", f"{field_name}[{i}] has {len(tokens)} tokens; the "
                           f"context window is {served.ctx}", param=f"{field_name}[{i}]",
                           code="context_length_exceeded")
        out.append(tokens)
    return out


async def embed(served: Served, inputs: list[list[int]], dims: Optional[int]) -> list[np.ndarray]:
    """Mean-pooled, L2-normalised final hidden states, computed on the engine's thread."""
    model = served.model
    gone = threading.Event()   # the client went away: stop between inputs

    def run():
        vecs = []
        for tokens in inputs:
            if gone.is_set():
                raise asyncio.CancelledError()
            v = np.asarray(model.hidden_states(tokens), dtype=np.float32).mean(axis=0)
            if dims is not None:
                v = v[:dims]
            vecs.append(v / max(float(np.linalg.norm(v)), 1e-12))
        return vecs

    from ..engine.scheduler import QueueFull

    try:
        return await served.engine.submit_call(run)
    except asyncio.CancelledError:
        gone.set()
        raise
    except QueueFull as exc:
        raise ApiError("overloaded", str(exc), retry_after=exc.retry_after) from None
