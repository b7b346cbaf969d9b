"""The Ollama dialect: /api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/version,
/api/embed and /api/embeddings. Streams are newline-delimited JSON (on by default)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any, Optional

from aiohttp import web

from ..engine.request import Request, TokenLogprob
from .common import (ChoiceDelta, Served, chat_events, check_fields, get, get_range,
                     json_response, normalize_tools, read_json, seed_from, send_ndjson, start_stream,
                     stop_list)
from .errors import ApiError, bad_field
from .openai import check_text, check_token_ids, embed, embedding_inputs, is_token_list

# Options that only tune speed or memory here: accepted (type-checked), no effect on the output.
_PERF_OPTIONS = {"numa": bool, "num_batch": int, "num_gpu": int, "main_gpu": int,
                 "low_vram": bool, "f16_kv": bool, "logits_all": bool, "use_mmap": bool,
                 "use_mlock": bool, "num_thread": int}
THINK_LEVELS = ("low", "medium", "high")
# Options of samplers we do not implement: accepted only at their "off" values.
_OFF_VALUES = {"tfs_z": 1.0, "typical_p": 1.0, "mirostat": 0, "penalize_newline": None}
_SAMPLING_OPTIONS = {"num_ctx", "seed", "num_predict", "top_k", "top_p", "min_p", "temperature",
                     "repeat_penalty", "repeat_last_n", "presence_penalty", "frequency_penalty",
                     "stop"}
_CHAT_FIELDS = {"model", "messages", "tools", "stream", "format", "options", "keep_alive",
                "think", "logprobs", "top_logprobs"}
_GENERATE_FIELDS = {"model", "prompt", "suffix", "system", "template", "context", "stream",
                    "raw", "format", "options", "keep_alive", "images", "think", "logprobs",
                    "top_logprobs"}


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("alloy-kit")
    except Exception:  # running from a source tree without installed metadata
        return "0.1.0"


class _Options:
    """Ollama ``options`` → sampling settings, stop strings, num_predict, num_ctx."""

    def __init__(self, served: Served, options: Any):
        from ..engine.request import Sampling

        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise bad_field("options", "expected an object")
        for key, value in options.items():
            if key in _PERF_OPTIONS:
                get(options, key, _PERF_OPTIONS[key], None, "options.")
                continue
            if key in _SAMPLING_OPTIONS:
                continue
            if key == "penalize_newline" and value in (None, True):
                continue
            if key in _OFF_VALUES and (value is None or (not isinstance(value, bool)
                                                         and value == _OFF_VALUES[key])):
                continue
            raise bad_field("options." + key, "unsupported option")
        w = "options."
        self.sampling = Sampling(
            temperature=get_range(options, "temperature", float, 0.0, 100.0, 0.8, w),
            top_k=get_range(options, "top_k", int, 0, 1 << 30, 40, w),
            top_p=get_range(options, "top_p", float, 0.0, 1.0, 0.9, w),
            min_p=get_range(options, "min_p", float, 0.0, 1.0, 0.0, w),
            seed=seed_from(options, w),
            repeat_penalty=get_range(options, "repeat_penalty", float, 0.01, 100.0, 1.1, w),
            repeat_last_n=get_range(options, "repeat_last_n", int, -1, 1 << 30, 64, w),
            presence_penalty=get_range(options, "presence_penalty", float, -100.0, 100.0, 0.0, w),
            frequency_penalty=get_range(options, "frequency_penalty", float, -100.0, 100.0, 0.0,
                                        w))
        if self.sampling.top_p == 0.0:
            self.sampling.top_p = 1.0  # Ollama treats 0 as "off"
        self.stop = stop_list(options.get("stop"), "options.stop")
        self.num_ctx = get_range(options, "num_ctx", int, 1, served.ctx, served.ctx, w)
        num_predict = get(options, "num_predict", int, None, w)
        if num_predict is not None and num_predict < -2:
            raise bad_field("options.num_predict", "must be -2, -1 or positive")
        if num_predict is None:
            self.max_tokens = served.default_max_tokens
        else:
            self.max_tokens = None if num_predict < 0 else num_predict

    def limit(self, n_prompt: int) -> Optional[int]:
        if n_prompt >= self.num_ctx:
            raise ApiError("invalid_request", f"prompt has {n_prompt} tokens; num_ctx is "
                                              f"{self.num_ctx}", code="context_length_exceeded")
        room = self.num_ctx - n_prompt
        return room if self.max_tokens is None else min(self.max_tokens, room)


def _logprobs_json(lps: list[TokenLogprob]) -> list[dict]:
    return [{"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes,
             "top_logprobs": [{"token": t, "logprob": v, "bytes": b} for t, v, b in lp.top]}
            for lp in lps]


def _tool_calls(calls: Any, where: str) -> list[dict]:
    """An assistant message's ``[{function: {name, arguments: {...}}}]``."""
    out = []
    for k, c in enumerate(calls):
        w = f"{where}[{k}]"
        fn = c.get("function") if isinstance(c, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_field(w + ".function", "expected {name, arguments}")
        args = get(fn, "arguments", dict, {}, w + ".function.")
        out.append({"type": "function", "function": {"name": fn["name"], "arguments": args}})
    return out


def _message_from(m: Any, i: int) -> dict:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        raise bad_field(where, "expected an object")
    check_fields(m, {"role", "content", "images", "tool_calls", "thinking", "tool_name",
                     "tool_call_id"}, where + ".")
    if m.get("role") not in ("system", "user", "assistant", "tool"):
        raise bad_field(where + ".role", f"unknown role {m.get('role')!r}")
    if get(m, "images", list, None, where + "."):
        raise bad_field(where + ".images", "this model has no vision input")
    msg = {"role": m["role"], "content": get(m, "content", str, "", where + ".")}
    get(m, "thinking", str, None, where + ".")  # earlier reasoning is not replayed
    get(m, "tool_call_id", str, None, where + ".")
    tool_name = get(m, "tool_name", str, None, where + ".")
    if tool_name:
        msg["name"] = tool_name
    calls = get(m, "tool_calls", list, None, where + ".")
    if calls:
        msg["tool_calls"] = _tool_calls(calls, where + ".tool_calls")
    return msg


def _keep_alive(body: dict) -> None:
    """``keep_alive`` (a duration string or seconds) has no effect: the model stays loaded."""
    value = body.get("keep_alive")
    if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
        raise bad_field("keep_alive", "expected a duration string or a number of seconds")


class OllamaApi:
    def __init__(self, served: Served):
        self.served = served

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/chat", self.chat), web.post("/api/generate", self.generate),
                web.get("/api/tags", self.tags), web.post("/api/show", self.show),
                web.get("/api/ps", self.ps), web.get("/api/version", self.version),
                web.post("/api/embed", self.embed), web.post("/api/embeddings", self.embeddings)]

    # -- metadata --------------------------------------------------------------------------
    def _details(self) -> dict:
        cfg = self.served.model.config
        n_params = getattr(cfg, "n_params", None)
        size = f"{n_params / 1e6:.0f}M" if n_params else ""
        return {"parent_model": "", "format": "gguf", "family": cfg.arch, "families": [cfg.arch],
                "parameter_size": size, "quantization_level": self.served.quantization}

    def _digest(self) -> str:
        return hashlib.sha256(f"{self.served.name}:{self.served.size_bytes}".encode()).hexdigest()

    def _modified(self) -> str:
        return dt.datetime.fromtimestamp(self.served.created, dt.timezone.utc).isoformat()

    async def version(self, request: web.Request) -> web.Response:
        return json_response({"version": _version()})

    async def tags(self, request: web.Request) -> web.Response:
        return json_response({"models": [{
            "name": self.served.name, "model": self.served.name, "modified_at": self._modified(),
            "size": self.served.size_bytes, "digest": self._digest(), "details": self._details()}]})

    async def ps(self, request: web.Request) -> web.Response:
        far = dt.datetime(9999, 12, 31, tzinfo=dt.timezone.utc).isoformat()
        return json_response({"models": [{
            "name": self.served.name, "model": self.served.name, "size": self.served.size_bytes,
            "digest": self._digest(), "details": self._details(), "expires_at": far,
            "size_vram": 0, "context_length": self.served.ctx}]})

    def capabilities(self) -> list[str]:
        caps = ["completion", "tools"]  # tools are described in the prompt if the template can't
        if self.served.can_think():
            caps.append("thinking")
        return caps

    async def show(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        check_fields(body, {"model", "name", "verbose", "system", "template", "options"})
        name = get(body, "name", str)  # the older spelling of "model"
        if body.get("model") is not None or name is None:
            self.served.check_model(body.get("model"))
        else:
            self.served.check_model(name, "name")
        get(body, "verbose", bool), get(body, "options", dict)
        get(body, "system", str), get(body, "template", str)
        cfg = self.served.model.config
        arch = cfg.arch
        info = {"general.architecture": arch, "general.name": getattr(cfg, "name", arch),
                f"{arch}.context_length": cfg.n_ctx_train, f"{arch}.embedding_length": cfg.n_embd,
                f"{arch}.block_count": cfg.n_layer, f"{arch}.attention.head_count": cfg.n_head,
                f"{arch}.attention.head_count_kv": cfg.n_head_kv,
                "tokenizer.ggml.vocab_size": cfg.n_vocab}
        template = getattr(self.served.tokenizer, "chat_template", "") or ""
        return json_response({
            "modelfile": f"FROM {self.served.name}\n", "parameters": f"num_ctx {self.served.ctx}",
            "template": template, "details": self._details(), "model_info": info,
            "capabilities": self.capabilities(), "modified_at": self._modified()})

    # -- generation ------------------------------------------------------------------------
    def _think_kw(self, think: Any) -> dict:
        if think is None:
            return {}
        if not isinstance(think, bool) and think not in THINK_LEVELS:
            raise bad_field("think", "expected a boolean or 'low'/'medium'/'high'")
        if think and not self.served.can_think():
            raise bad_field("think", f"model {self.served.name!r} does not support thinking")
        return {"enable_thinking": bool(think)}

    def _format(self, fmt: Any):
        if fmt in (None, ""):
            return None
        if fmt == "json":
            return self.served.grammar("json_object")
        if isinstance(fmt, dict):
            return self.served.grammar("json_schema", fmt)
        raise bad_field("format", "expected 'json' or a JSON schema object")

    def _stats(self, end, created: float) -> dict:
        t = end.timings
        return {"total_duration": int((time.perf_counter() - created) * 1e9),
                "load_duration": 0, "prompt_eval_count": end.usage.prompt_tokens,
                "prompt_eval_duration": int(t.get("prompt_s", 0) * 1e9),
                "eval_count": end.usage.completion_tokens,
                "eval_duration": int(t.get("eval_s", 0) * 1e9)}

    async def chat(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter()
        body = await read_json(request)
        check_fields(body, _CHAT_FIELDS)
        self.served.check_model(body.get("model"))
        messages = get(body, "messages", list, [])
        stream_out = get(body, "stream", bool, True)
        _keep_alive(body)
        msgs = [_message_from(m, i) for i, m in enumerate(messages)]
        opts = _Options(self.served, body.get("options"))
        tools = normalize_tools(body.get("tools"))
        constraint = self._format(body.get("format"))
        logprobs = get(body, "logprobs", bool, False)
        top = get_range(body, "top_logprobs", int, 0, 20, 0)
        think_kw = self._think_kw(body.get("think"))
        if not msgs:  # Ollama's "load the model" request (checked like any other)
            return json_response({"model": self.served.name, "created_at": _now(),
                                  "message": {"role": "assistant", "content": ""},
                                  "done": True, "done_reason": "load"})
        prompt, text = await self.served.off_loop(self.served.chat_prompt, msgs, tools, **think_kw)
        req = Request(prompt=prompt, max_tokens=opts.limit(len(prompt)), sampling=opts.sampling,
                      stop=opts.stop, logprobs=logprobs or top > 0, top_logprobs=top,
                      constraint_factory=constraint)
        stream = await self.served.submit(req)
        events = chat_events(self.served, stream, tools_mode="auto" if tools else "none",
                             prompt_text=text)
        base = {"model": self.served.name}
        try:
            if stream_out:
                resp = await start_stream(request, "application/x-ndjson")
                async for ev in events:
                    if isinstance(ev, ChoiceDelta):
                        msg: dict = {"role": "assistant", "content": ev.content}
                        if ev.reasoning:
                            msg["thinking"] = ev.reasoning
                        if ev.tool_calls:
                            msg["tool_calls"] = [_call_json(c) for c in ev.tool_calls]
                        part = dict(base, created_at=_now(), message=msg, done=False)
                        if ev.logprobs:
                            part["logprobs"] = _logprobs_json(ev.logprobs)
                        await send_ndjson(resp, part)
                    else:
                        await send_ndjson(resp, dict(
                            base, created_at=_now(), message={"role": "assistant", "content": ""},
                            done=True, done_reason=_reason(ev.reason), **self._stats(ev, t0)))
                await resp.write_eof()
                return resp
            content = reasoning = ""
            lps: list[TokenLogprob] = []
            end = None
            async for ev in events:
                if isinstance(ev, ChoiceDelta):
                    content += ev.content
                    reasoning += ev.reasoning
                    lps += ev.logprobs
                else:
                    end = ev
            msg = {"role": "assistant", "content": content}
            if reasoning:
                msg["thinking"] = reasoning
            if end.tool_calls:
                msg["tool_calls"] = [_call_json(c) for c in end.tool_calls]
            out = dict(base, created_at=_now(), message=msg, done=True,
                       done_reason=_reason(end.reason), **self._stats(end, t0))
            if req.logprobs:
                out["logprobs"] = _logprobs_json(lps)
            return json_response(out)
        finally:
            stream.cancel()

    async def generate(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter()
        body = await read_json(request)
        check_fields(body, _GENERATE_FIELDS)
        self.served.check_model(body.get("model"))
        for key in ("suffix", "template"):
            if get(body, key, str, ""):
                raise bad_field(key, "not supported")
        if get(body, "images", list, None):
            raise bad_field("images", "this model has no vision input")
        prompt_text = get(body, "prompt", str, "")
        stream_out = get(body, "stream", bool, True)
        _keep_alive(body)
        system = get(body, "system", str, "")
        raw = get(body, "raw", bool, False)
        context = get(body, "context", list, [])
        opts = _Options(self.served, body.get("options"))
        if not is_token_list(context):
            raise bad_field("context", "expected a list of token ids")
        check_token_ids(context, self.served.model.config.n_vocab, "context")
        if raw and system:
            raise bad_field("system", "cannot be used with raw: true")
        logprobs = get(body, "logprobs", bool, False)
        top = get_range(body, "top_logprobs", int, 0, 20, 0)
        constraint = self._format(body.get("format"))
        think_kw = self._think_kw(body.get("think"))
        if not prompt_text and not context:  # Ollama's "load the model" request
            return json_response({"model": self.served.name, "created_at": _now(),
                                  "response": "", "done": True, "done_reason": "load"})
        text = check_text(prompt_text, "prompt")
        check_text(system, "system")
        if raw:
            prompt = await self.served.off_loop(self.served.text_tokens, prompt_text) if not context else \
                await self.served.off_loop(self.served.tokenizer.encode, prompt_text, add_special_tokens=False)
        else:
            msgs = []
            if system:
                msgs.append({"role": "system", "content": system})
            msgs.append({"role": "user", "content": prompt_text})
            prompt, text = await self.served.off_loop(self.served.chat_prompt, msgs, None, **think_kw)
        prompt = list(context) + prompt
        req = Request(prompt=prompt, max_tokens=opts.limit(len(prompt)), sampling=opts.sampling,
                      stop=opts.stop, logprobs=logprobs or top > 0, top_logprobs=top,
                      constraint_factory=constraint)
        stream = await self.served.submit(req)
        events = chat_events(self.served, stream, prompt_text=text)
        generated: list[int] = []
        base = {"model": self.served.name}
        try:
            if stream_out:
                resp = await start_stream(request, "application/x-ndjson")
                async for ev in events:
                    if isinstance(ev, ChoiceDelta):
                        generated += ev.token_ids
                        part = dict(base, created_at=_now(), response=ev.content, done=False)
                        if ev.reasoning:
                            part["thinking"] = ev.reasoning
                        if ev.logprobs:
                            part["logprobs"] = _logprobs_json(ev.logprobs)
                        await send_ndjson(resp, part)
                    else:
                        await send_ndjson(resp, dict(
                            base, created_at=_now(), response="", done=True,
                            done_reason=_reason(ev.reason), context=prompt + generated,
                            **self._stats(ev, t0)))
                await resp.write_eof()
                return resp
            content = reasoning = ""
            lps: list[TokenLogprob] = []
            end = None
            async for ev in events:
                if isinstance(ev, ChoiceDelta):
                    content += ev.content
                    reasoning += ev.reasoning
                    lps += ev.logprobs
                    generated += ev.token_ids
                else:
                    end = ev
            out = dict(base, created_at=_now(), response=content, done=True,
                       done_reason=_reason(end.reason), context=prompt + generated,
                       **self._stats(end, t0))
            if reasoning:
                out["thinking"] = reasoning
            if req.logprobs:
                out["logprobs"] = _logprobs_json(lps)
            return json_response(out)
        finally:
            stream.cancel()

    # -- embeddings ------------------------------------------------------------------------
    async def embed(self, request: web.Request) -> web.Response:

        t0 = time.perf_counter()
        body = await read_json(request)
        check_fields(body, {"model", "input", "truncate", "options", "keep_alive", "dimensions"})
        self.served.check_model(body.get("model"))
        _keep_alive(body)
        _Options(self.served, body.get("options"))
        dims = get_range(body, "dimensions", int, 1, self.served.model.config.n_embd, None)
        value = body.get("input")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise bad_field("input", "expected a string or a list of strings")
        if get(body, "truncate", bool, True):
            value = [value] if isinstance(value, str) else value
            if isinstance(value, list):
                texts = [check_text(v, f"input[{i}]") if isinstance(v, str) else v for i, v in enumerate(value)]
                value = await self.served.off_loop(lambda: [
                    self.served.text_tokens(v)[: self.served.ctx] if isinstance(v, str) else v for v in texts])
        inputs = await self.served.off_loop(embedding_inputs, self.served, value, "input")
        vecs = await embed(self.served, inputs, dims)
        return json_response({"model": self.served.name,
                              "embeddings": [[float(x) for x in v] for v in vecs],
                              "total_duration": int((time.perf_counter() - t0) * 1e9),
                              "load_duration": 0,
                              "prompt_eval_count": sum(len(t) for t in inputs)})

    async def embeddings(self, request: web.Request) -> web.Response:

        body = await read_json(request)
        check_fields(body, {"model", "prompt", "options", "keep_alive"})
        self.served.check_model(body.get("model"))
        _keep_alive(body)
        _Options(self.served, body.get("options"))
        prompt = check_text(get(body, "prompt", str, ""), "prompt")
        inputs = await self.served.off_loop(embedding_inputs, self.served, prompt, "prompt")
        vecs = await embed(self.served, inputs, None)
        return json_response({"embedding": [float(x) for x in vecs[0]]})


def _reason(reason: str) -> str:
    return {"tool_calls": "stop"}.get(reason, reason)


def _call_json(call) -> dict:
    return {"id": call.id, "function": {"name": call.name, "arguments": call.arguments}}
