"""What every dialect adapter shares: the served model, field checks, prompt rendering and
the chat post-processing pipeline (reasoning split → tool-call parsing)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import time
from dataclasses import dataclass, field
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, AsyncIterator, Callable, Iterable, Optional

from aiohttp import web

from ..engine.grammar import GrammarError, GrammarFactory
from ..engine.request import FinishEvent, Request, TokenEvent, TokenLogprob, Usage
from ..engine.scheduler import Engine, PromptTooLong, QueueFull, Stream
from ..reasoning import OPEN as THINK_OPEN, ReasoningSplitter
from ..tools import ToolCall, ToolParser, calls_from_json, parser_for
from .errors import ApiError, bad_field

# -- request body checks -------------------------------------------------------------------


@dataclass(frozen=True)
class BodyLimits:
    """How large and how deeply nested a JSON body may be."""

    max_bytes: int
    max_depth: int


LIMITS_KEY = web.AppKey("alloy_body_limits", BodyLimits)
BOOKMARK_HEADER = "X-Alloy-Bookmark"
BOOKMARK = contextvars.ContextVar("alloy_bookmark", default=None)
"""The bookmark the request being handled names (its ``X-Alloy-Bookmark`` header); set by the server."""
_BOOKMARK_NAME = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def bookmark_from(request: web.Request) -> Optional[str]:
    """The request's ``X-Alloy-Bookmark`` name (1-64 letters, digits and ``._:-``), or None."""
    name = request.headers.get(BOOKMARK_HEADER)
    if name is None:
        return None
    if not _BOOKMARK_NAME.fullmatch(name):
        raise ApiError("invalid_request", f"header {BOOKMARK_HEADER}: expected 1-64 letters, digits or '._:-'",
                       param=BOOKMARK_HEADER)
    return name
_PARSE_ON_LOOP_BYTES = 64 * 1024  # larger bodies are parsed on a worker thread
GRAMMAR_SECONDS = 20   # a grammar that takes longer to compile is refused (400)


def json_depth(value: Any, limit: int) -> int:
    """Nesting depth of a parsed JSON value, counted up to ``limit + 1`` (no recursion)."""
    deepest, todo = 0, [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            todo.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def _parse(raw: bytes, max_depth: int) -> Any:
    try:
        body = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError("invalid_request", f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError("invalid_request", f"request body is nested more than {max_depth} levels deep") from None
    if json_depth(body, max_depth) > max_depth:
        raise ApiError("invalid_request", f"request body is nested more than {max_depth} levels deep")
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        where, text = _non_unicode(body)
        bad = next(ch for ch in text if 0xD800 <= ord(ch) <= 0xDFFF)
        raise bad_field(where, f"not Unicode text (a lone surrogate escape \\u{ord(bad):04x})") from None
    return body


def _non_unicode(value: Any, where: str = "") -> tuple[str, str]:
    """The path (``messages[0].content``) and text of the first string holding a lone surrogate."""
    todo = [(value, where)]
    while todo:
        node, path = todo.pop(0)
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return path or "body", node
        elif isinstance(node, dict):
            todo.extend((v, f"{path}.{k}" if path else str(k)) for k, v in node.items())
            todo.extend((k, f"{path} (a key)" if path else "a key") for k in node)
        elif isinstance(node, list):
            todo.extend((v, f"{path}[{i}]") for i, v in enumerate(node))
    return "body", ""


async def read_json(request: web.Request) -> dict:
    """The request's JSON object body, within the app's :class:`BodyLimits` (large bodies are parsed
    off the event loop)."""
    limits = request.app.get(LIMITS_KEY) or BodyLimits(request.client_max_size, 64)
    raw = await request.read()
    if len(raw) > _PARSE_ON_LOOP_BYTES:
        body = await asyncio.get_running_loop().run_in_executor(None, _parse, raw, limits.max_depth)
    else:
        body = _parse(raw, limits.max_depth)
    if not isinstance(body, dict):
        raise ApiError("invalid_request", "request body must be a JSON object")
    return body


def check_fields(body: dict, known: Iterable[str], where: str = "") -> None:
    """Reject fields we do not implement (a 400 naming the first one)."""
    known = set(known)
    for key in body:
        if key not in known:
            raise bad_field(where + key, "unsupported parameter")


def get(body: dict, key: str, types, default=None, where: str = ""):
    """``body[key]`` checked against ``types`` (None/absent → default)."""
    value = body.get(key)
    if value is None:
        return default
    if types is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if types is int and isinstance(value, float) and value.is_integer():
        return int(value)   # JSON's 4.0 is the integer 4
    if not isinstance(value, types) or (isinstance(value, bool) and types in (int, float)):
        tname = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise bad_field(where + key, f"expected {tname}, got {type(value).__name__}")
    return value


def get_range(body: dict, key: str, types, lo, hi, default=None, where: str = ""):
    value = get(body, key, types, default, where)
    if body.get(key) is not None and not (lo <= value <= hi):
        raise bad_field(where + key, f"must be between {lo} and {hi}, got {value}")
    return value


def stop_list(value: Any, field_name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise bad_field(field_name, "expected a string or a list of strings")


# -- the served model ----------------------------------------------------------------------


@dataclass
class Served:
    """The one loaded model and everything adapters need to use it."""

    engine: Engine
    model: Any
    tokenizer: Any
    name: str
    ctx: int
    default_max_tokens: Optional[int]
    grammars: GrammarFactory
    created: int = field(default_factory=lambda: int(time.time()))
    size_bytes: int = 0
    quantization: str = ""
    preparation: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(
        max_workers=2, thread_name_prefix="alloy-prepare"))
    """Where prompts are rendered and tokenized and grammars compiled: never on the event loop."""

    async def off_loop(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` on the preparation threads (its exceptions, ApiError too, propagate)."""
        return await asyncio.get_running_loop().run_in_executor(self.preparation, partial(fn, *args, **kwargs))

    def check_model(self, requested: Any, field_name: str = "model") -> None:
        if not isinstance(requested, str) or not requested:
            raise bad_field(field_name, "required (a model name string)")
        if requested not in self.aliases:
            raise ApiError("not_found", f"model {requested!r} not found; this server serves "
                                        f"{self.name!r}", param=field_name,
                           code="model_not_found")

    @property
    def aliases(self) -> set[str]:
        names = {self.name}
        if ":" not in self.name:
            names.add(self.name + ":latest")
        return names

    @property
    def family(self) -> str:
        return getattr(self.tokenizer, "family", "") or ""

    def can_think(self) -> bool:
        """Whether the chat template knows a ``<think>`` reasoning section."""
        return "<think>" in (getattr(self.tokenizer, "chat_template", "") or "")

    def template_supports_tools(self) -> bool:
        return "tools" in (getattr(self.tokenizer, "chat_template", "") or "")

    def text_tokens(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=True))

    def chat_prompt(self, messages: list[dict], tools: Optional[list[dict]] = None,
                    **template_kw) -> tuple[list[int], str]:
        """Render and tokenize a chat; returns ``(tokens, prompt_text)``."""
        if not self.template_supports_tools():
            messages = inject_tool_instructions(messages, tools)
            tools = None
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=True, tokenize=False, **template_kw)
            tokens = self.tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=True, tokenize=True, **template_kw)
        except Exception as exc:  # jinja raise_exception / TemplateError from the model's template
            raise ApiError("invalid_request", f"messages: the chat template rejected them: "
                                              f"{exc}", param="messages") from None
        return list(tokens), text

    def tool_parser(self) -> ToolParser:
        if not self.template_supports_tools():
            return parser_for("hermes")  # we taught the model this format ourselves
        return parser_for(self.family)

    async def submit(self, req: Request) -> Stream:
        """Validate ``req``'s sampling, compile its grammar off the event loop, and queue it."""
        from ..engine.sampling import SamplingParams

        s = req.sampling
        try:
            SamplingParams(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
                           min_p=s.min_p, repeat_penalty=s.repeat_penalty,
                           repeat_last_n=s.repeat_last_n)
        except ValueError as exc:
            raise ApiError("invalid_request", str(exc)) from None
        if isinstance(req.constraint_factory, PendingGrammar):
            req.constraint_factory = await self._compile(req.constraint_factory)
        if req.bookmark is None:
            req.bookmark = BOOKMARK.get()
        try:
            return self.engine.submit(req)
        except QueueFull as exc:
            raise ApiError("overloaded", str(exc), retry_after=exc.retry_after) from None
        except PromptTooLong as exc:
            raise ApiError("invalid_request", str(exc), code="context_length_exceeded") from None

    async def _compile(self, pending: "PendingGrammar"):
        try:
            return await asyncio.wait_for(self.off_loop(pending.compile), GRAMMAR_SECONDS)
        except GrammarError as exc:
            raise ApiError("invalid_request", f"could not compile the grammar: {exc}") from None
        except asyncio.TimeoutError:
            raise ApiError("invalid_request", f"the grammar did not compile within {GRAMMAR_SECONDS} s; "
                                              f"simplify the schema") from None

    def max_tokens(self, requested: Optional[int]) -> Optional[int]:
        return requested if requested is not None else self.default_max_tokens

    def grammar(self, kind: str, *args) -> "PendingGrammar":
        """The ``kind`` grammar (``json_object``, ``json_schema``, ``tool_call``) a request asks for; compiled
        when the request is submitted."""
        return PendingGrammar(lambda: getattr(self.grammars, kind)(*args))


class PendingGrammar:
    """A grammar a request asked for, not compiled yet (:meth:`Served.submit` compiles it off the loop)."""

    def __init__(self, compile: Callable[[], Callable]):
        self.compile = compile


def inject_tool_instructions(messages: list[dict], tools: Optional[list[dict]]) -> list[dict]:
    """For templates without tool support: describe the tools in the system message and
    turn earlier calls and results into plain text in the Hermes format."""
    out = [dict(m) for m in messages]
    if tools:
        specs = "\n".join(json.dumps(t["function"]) for t in tools)
        note = ("You can call these tools:\n<tools>\n" + specs + "\n</tools>\n"
                "To call one, reply with <tool_call>{\"name\": <tool name>, \"arguments\": "
                "<arguments object>}</tool_call>.")
        if out and out[0].get("role") == "system":
            out[0]["content"] = (out[0].get("content") or "") + "\n\n" + note
        else:
            out.insert(0, {"role": "system", "content": note})
    for m in out:  # templates without tool support know no tool roles or calls either
        if m.get("role") == "tool":
            m["role"] = "user"
            m["content"] = "Tool result: " + (m.get("content") or "")
        if m.get("tool_calls"):
            calls = "".join("<tool_call>" + json.dumps({"name": c["function"]["name"],
                            "arguments": c["function"]["arguments"]}) + "</tool_call>"
                            for c in m["tool_calls"])
            m["content"] = (m.get("content") or "") + calls
            del m["tool_calls"]
    return out


def normalize_tools(tools: Any, field_name: str = "tools") -> Optional[list[dict]]:
    """OpenAI/Ollama ``[{"type": "function", "function": {...}}]`` → checked list."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise bad_field(field_name, "expected a list")
    out = []
    for i, t in enumerate(tools):
        where = f"{field_name}[{i}]"
        if not isinstance(t, dict) or t.get("type", "function") != "function":
            raise bad_field(where, "only tools of type 'function' are supported")
        check_fields(t, {"type", "function"}, where + ".")
        fn = t.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_field(where + ".function.name", "required string")
        check_fields(fn, {"name", "description", "parameters", "strict"}, where + ".function.")
        get(fn, "description", str, "", where + ".function.")
        get(fn, "strict", bool, False, where + ".function.")
        params = fn.get("parameters")
        params = {"type": "object", "properties": {}} if params is None else params
        if not isinstance(params, dict):
            raise bad_field(where + ".function.parameters", "expected a JSON schema object")
        out.append({"type": "function", "function": {
            "name": fn["name"], "description": fn.get("description") or "", "parameters": params}})
    return out or None


def tool_names(tools: Optional[list[dict]]) -> set[str]:
    return {t["function"]["name"] for t in tools or []}


# -- chat post-processing ------------------------------------------------------------------


@dataclass
class ChoiceDelta:
    index: int
    content: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)


@dataclass
class ChoiceEnd:
    index: int
    reason: str  # stop | length | tool_calls | cancelled
    usage: Usage
    tool_calls: list[ToolCall]
    stop_string: Optional[str] = None
    timings: dict = field(default_factory=dict)


class _ChoiceState:
    def __init__(self, tools_mode: str, parser: Optional[ToolParser], reasoning_opened: bool):
        self.mode = tools_mode
        self.parser = parser
        self.splitter = ReasoningSplitter(opened=reasoning_opened)
        self.forced_buf = ""
        self.calls: list[ToolCall] = []

    def push(self, text: str, final: bool = False) -> tuple[str, str, list[ToolCall]]:
        reasoning, content = self.splitter.feed(text)
        if final:
            r2, c2 = self.splitter.finish()
            reasoning, content = reasoning + r2, content + c2
        calls: list[ToolCall] = []
        if self.mode == "forced":
            self.forced_buf += content
            content = ""
            if final:
                calls = calls_from_json(self.forced_buf) or []
                if not calls:
                    content = self.forced_buf
        elif self.parser is not None:
            items = self.parser.feed(content)
            if final:
                items += self.parser.finish()
            content = "".join(i for i in items if isinstance(i, str))
            calls = [i for i in items if isinstance(i, ToolCall)]
        self.calls += calls
        return reasoning, content, calls


async def chat_events(served: Served, stream: Stream, *, tools_mode: str = "none",
                      prompt_text: str = "", n: int = 1) -> AsyncIterator:
    """Engine events → :class:`ChoiceDelta` / :class:`ChoiceEnd` with reasoning and tool calls
    split out. ``tools_mode``: "none" (no parsing), "auto" (family parser), "forced" (the
    grammar made the whole reply one JSON call)."""
    opened = prompt_text.rstrip().endswith(THINK_OPEN)
    states = [_ChoiceState(tools_mode, served.tool_parser() if tools_mode == "auto" else None,
                           opened) for _ in range(n)]
    async for ev in stream:
        st = states[ev.index]
        if isinstance(ev, TokenEvent):
            reasoning, content, calls = st.push(ev.text)
            if reasoning or content or calls or ev.logprobs:
                yield ChoiceDelta(ev.index, content, reasoning, calls, ev.logprobs, ev.token_ids)
        elif isinstance(ev, FinishEvent):
            reasoning, content, calls = st.push("", final=True)
            if reasoning or content or calls:
                yield ChoiceDelta(ev.index, content, reasoning, calls)
            reason = ev.reason
            if st.calls and reason == "stop":
                reason = "tool_calls"
            yield ChoiceEnd(ev.index, reason, ev.usage, st.calls, ev.stop_string, ev.timings)


# -- streaming helpers ---------------------------------------------------------------------


STREAM_KEY = web.RequestKey("alloy_stream", web.StreamResponse)


async def start_stream(request: web.Request, content_type: str) -> web.StreamResponse:
    """Begin a streamed reply; the server's middleware ends it with an in-stream error frame
    if the handler fails after this point."""
    resp = web.StreamResponse(headers={"Content-Type": content_type,
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    request[STREAM_KEY] = resp
    return resp


async def send_stream_error(resp: web.StreamResponse, dialect: str, body: dict) -> None:
    """The error frame each dialect's client recognises inside a stream."""
    if dialect == "ollama":
        await send_ndjson(resp, body)
    elif dialect == "anthropic":
        await send_sse(resp, body, "error")
    else:
        await send_sse(resp, body)
    await resp.write_eof()


async def send_sse(resp: web.StreamResponse, data: Any, event: Optional[str] = None) -> None:
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data)
    await resp.write((head + "data: " + payload + "\n\n").encode())


async def send_ndjson(resp: web.StreamResponse, data: dict) -> None:
    await resp.write((json.dumps(data) + "\n").encode())


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def sampling_from(body: dict, *, temperature: float, where: str = "", **defaults):
    """Common sampling fields (OpenAI names + llama.cpp extensions) → :class:`Sampling`."""
    from ..engine.request import Sampling

    return Sampling(
        temperature=get_range(body, "temperature", float, 0.0, 2.0, temperature, where),
        top_p=get_range(body, "top_p", float, 0.0, 1.0, defaults.get("top_p", 1.0), where),
        top_k=get_range(body, "top_k", int, 0, 1 << 30, defaults.get("top_k", 0), where),
        min_p=get_range(body, "min_p", float, 0.0, 1.0, defaults.get("min_p", 0.0), where),
        seed=seed_from(body, where),
        repeat_penalty=get_range(body, "repetition_penalty", float, 0.01, 10.0,
                                 defaults.get("repeat_penalty", 1.0), where),
        presence_penalty=get_range(body, "presence_penalty", float, -2.0, 2.0, 0.0, where),
        frequency_penalty=get_range(body, "frequency_penalty", float, -2.0, 2.0, 0.0, where),
    )


def seed_from(body: dict, where: str = "") -> Optional[int]:
    """The request's sampling seed; a negative one (llama.cpp's and Ollama's ``-1``) means random."""
    seed = get(body, "seed", int, None, where)
    return None if seed is None or seed < 0 else seed


def logit_bias_from(value: Any, n_vocab: int, field_name: str = "logit_bias") -> dict[int, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_field(field_name, "expected an object of token id -> bias")
    out = {}
    for k, v in value.items():
        if not re.fullmatch(r"0|[1-9][0-9]*", k):
            raise bad_field(f"{field_name}.{k}", "keys must be token ids")
        tid = int(k)
        if not 0 <= tid < n_vocab:
            raise bad_field(f"{field_name}.{k}", f"token id outside the vocabulary of {n_vocab}")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not -100 <= v <= 100:
            raise bad_field(f"{field_name}.{k}", "bias must be a number in [-100, 100]")
        out[tid] = float(v)
    return out
