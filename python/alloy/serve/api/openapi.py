"""The OpenAPI 3.1 description of ``alloy serve``, served at ``GET /openapi.json``.

``document(served)`` builds it from the small schema helpers below: one request schema per
POST endpoint, written from the handler's own checks (the fields it accepts, their types,
ranges and enums, which are required, and which values it rejects), the success bodies
(JSON, server-sent events, newline-delimited JSON) and each dialect's error body. Values that
depend on the loaded model (its names, vocabulary size, embedding width, context window,
whether it can think) come from ``served``. ``test/serve/test_openapi.py`` checks that every
route of the app is described and nothing else, and fuzzes the server against the document.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

from aiohttp import web

from .common import Served, json_response
from .errors import dialect_for_path

Schema = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
BIG = 1 << 30  # the upper bound the handlers put on counts (max_tokens, top_k, ...)
JSON, SSE, NDJSON = "application/json", "text/event-stream", "application/x-ndjson"
ANY: Schema = {}  # any JSON value
# answered without the API key (the server's own list; a test checks they agree)
OPEN_PATHS = ("/", "/static/chat.js", "/static/chat.css", "/health", "/api/version")


# -- schema helpers ------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": "#/components/schemas/" + name}


def string(**kw: Any) -> Schema:
    return {"type": "string", **kw}


def integer(lo: Optional[int] = None, hi: Optional[int] = None, **kw: Any) -> Schema:
    s: Schema = {"type": "integer", **kw}
    if lo is not None:
        s["minimum"] = lo
    if hi is not None:
        s["maximum"] = hi
    return s


def number(lo: Optional[float] = None, hi: Optional[float] = None, *,
           above: Optional[float] = None, **kw: Any) -> Schema:
    """A JSON number in ``[lo, hi]`` (``above``: an exclusive lower bound instead)."""
    s: Schema = {"type": "number", **kw}
    if lo is not None:
        s["minimum"] = lo
    if above is not None:
        s["exclusiveMinimum"] = above
    if hi is not None:
        s["maximum"] = hi
    return s


def boolean(**kw: Any) -> Schema:
    return {"type": "boolean", **kw}


def const(value: Any, **kw: Any) -> Schema:
    return {"const": value, **kw}


def enum(*values: Any, **kw: Any) -> Schema:
    return {"enum": list(values), **kw}


def array(items: Schema, *, min_items: Optional[int] = None, max_items: Optional[int] = None,
          **kw: Any) -> Schema:
    s: Schema = {"type": "array", "items": items, **kw}
    if min_items is not None:
        s["minItems"] = min_items
    if max_items is not None:
        s["maxItems"] = max_items
    return s


def obj(properties: dict[str, Schema], required: Iterable[str] = (), *,
        extra: Any = False, **kw: Any) -> Schema:
    """An object of ``properties``; ``extra``: additionalProperties (False: the handler
    answers 400 naming any other field)."""
    s: Schema = {"type": "object", "properties": properties}
    required = list(required)
    if required:
        s["required"] = required
    if extra is not True:
        s["additionalProperties"] = extra
    s.update(kw)
    return s


def any_of(*schemas: Schema, **kw: Any) -> Schema:
    return {"anyOf": list(schemas), **kw}


def nullable(schema: Schema) -> Schema:
    """``schema`` or JSON null (the handlers read a null field as an absent one)."""
    s = dict(schema)
    if {"anyOf", "oneOf", "allOf", "$ref"} & set(s):
        return {"anyOf": [s, {"type": "null"}]}
    if "const" in s:
        s["enum"] = [s.pop("const")]
    if "enum" in s and None not in s["enum"]:
        s["enum"] = [*s["enum"], None]
    t = s.get("type")
    if isinstance(t, str):
        s["type"] = [t, "null"]
    elif isinstance(t, list) and "null" not in t:
        s["type"] = [*t, "null"]
    return s


def optional(properties: dict[str, Schema]) -> dict[str, Schema]:
    """Every property nullable (each may be left out or sent as null)."""
    return {k: nullable(v) for k, v in properties.items()}


def described(schema: Schema, text: str) -> Schema:
    return {**schema, "description": text}


def unless(field: str, exempt: Schema, needs: str, needed: Schema) -> Schema:
    """A ``dependentSchemas`` entry: ``field``, unless its value matches ``exempt``, needs the
    field ``needs`` to match ``needed`` (the handler answers 400 otherwise)."""
    return any_of(obj({field: exempt}, extra=True), obj({needs: needed}, [needs], extra=True))


def _needs_stream() -> Schema:
    empty = any_of({"type": "null"}, {"type": "object", "maxProperties": 0})
    return unless("stream_options", empty, "stream", const(True))


# -- shapes shared by several dialects -------------------------------------------------------


def _model_name(served: Served) -> Schema:
    return string(enum=sorted(served.aliases), description="The served model (404 for any other "
                                                            "name).")


def _token_id(served: Served) -> Schema:
    return integer(0, served.model.config.n_vocab - 1, description="A token id of the model's "
                                                                   "vocabulary.")


def _stop() -> Schema:
    return any_of(string(), array(string()),
                  description="Stop strings: generation ends before the first one (never "
                              "emitted).")


def _function_tool() -> Schema:
    """OpenAI/Ollama ``{type: "function", function: {name, description, parameters}}``."""
    fn = obj({"name": string(), **optional({"description": string(),
                                             "parameters": obj({}, extra=True,
                                                               description="A JSON schema."),
                                             "strict": boolean()})}, ["name"])
    return obj({"type": const("function"), "function": fn}, ["function"])


def _tools() -> Schema:
    return described(array(_function_tool()), "Tools the model may call. Templates without "
                     "tool support get them described in the system message.")


def _json_schema_object() -> Schema:
    return obj({}, extra=True, description="A JSON schema (compiled to a grammar; a schema "
                                           "that does not compile gets 400).")


def _logprob_entry() -> Schema:
    top = obj({"token": string(), "logprob": number(), "bytes": array(integer(0, 255))},
              ["token", "logprob", "bytes"], extra=True)
    return obj({"token": string(), "logprob": number(), "bytes": array(integer(0, 255)),
                "top_logprobs": array(top)}, ["token", "logprob", "top_logprobs"], extra=True)


def _sse_event(data: Schema, events: Optional[list[str]] = None, note: str = "",
               done: bool = False) -> Schema:
    """One server-sent event: its ``data`` is JSON text described by ``contentSchema`` (or,
    with ``done``, the text ``[DONE]`` that ends an OpenAI stream)."""
    payload = string(contentMediaType=JSON, contentSchema=data)
    if done:
        payload = any_of(const("[DONE]"), payload)
    if note:
        payload["description"] = note
    props: Schema = {"data": payload,
                     "event": enum(*events) if events else const("message"),
                     "id": string(), "retry": integer(0)}
    return obj(props, ["data"], extra=True)


# -- errors ----------------------------------------------------------------------------------

_STATUS_TEXT = {
    304: "Not modified (the asset's ETag matched If-None-Match).",
    400: "Invalid request: the message names the offending field.",
    401: "Missing or wrong API key (only when the server runs with an API key).",
    403: "The Host or Origin header is not allowed (DNS-rebinding and cross-site guard).",
    404: "The model (or path) is not served here.",
    413: "The request body is larger than the server's limit.",
    415: "The request body is not JSON (text/plain and form bodies are refused).",
    500: "Internal error (a bug: the server log has the details).",
    503: "The server is overloaded (queue full); see Retry-After.",
    529: "The server is overloaded (queue full); see Retry-After.",
}


def _error_schemas() -> dict[str, Schema]:
    return {
        "OpenAIError": obj({"error": obj({
            "message": string(), "type": string(), "param": nullable(string()),
            "code": nullable(string())}, ["message", "type", "param", "code"], extra=True)},
            ["error"], extra=True),
        "AnthropicError": obj({"type": const("error"), "error": obj(
            {"type": string(), "message": string()}, ["type", "message"], extra=True)},
            ["type", "error"], extra=True),
        "OllamaError": obj({"error": string()}, ["error"], extra=True),
    }


_DIALECT_ERROR = {"openai": "OpenAIError", "anthropic": "AnthropicError", "ollama": "OllamaError"}


def _errors(path: str, statuses: Iterable[int]) -> dict[str, Schema]:
    """The error answers of ``path``, in the body shape of its dialect."""
    name = _DIALECT_ERROR[dialect_for_path(path)]
    out = {}
    for status in statuses:
        resp: Schema = {"description": _STATUS_TEXT[status]}
        if status != 304:
            resp["content"] = {JSON: {"schema": ref(name)}}
        if status in (503, 529):
            resp["headers"] = {"Retry-After": {"schema": integer(1),
                                               "description": "Seconds to wait."}}
        out[str(status)] = resp
    return out


def _ok(description: str, content: Optional[dict[str, Schema]] = None) -> Schema:
    resp: Schema = {"description": description}
    if content:
        resp["content"] = {media: {"schema": schema} for media, schema in content.items()}
    return resp


# -- OpenAI ------------------------------------------------------------------------------------


def _openai_sampling(served: Served) -> dict[str, Schema]:
    n_vocab = served.model.config.n_vocab
    return optional({
        "temperature": number(0, 2), "top_p": number(None, 1, above=0),
        "top_k": integer(0, BIG), "min_p": number(0, 1),
        "seed": integer(description="Sampling seed (a negative one means random)."),
        "repetition_penalty": number(0.01, 10), "presence_penalty": number(-2, 2),
        "frequency_penalty": number(-2, 2),
        "logit_bias": obj({}, extra=number(-100, 100),
                          propertyNames={"pattern": "^(0|[1-9][0-9]*)$"},
                          description=f"Token id (below {n_vocab}) -> bias in [-100, 100]."),
    })


def _openai_common(served: Served) -> dict[str, Schema]:
    return {
        "model": _model_name(served),
        **optional({
            "stream": boolean(),
            "stream_options": obj(optional({"include_usage": boolean(),
                                            "continuous_usage_stats": const(False)}),
                                  description="Only with stream: true."),
            "n": integer(1, 16, description="Choices to generate (they share the prompt)."),
            "stop": _stop(),
            "user": string(),
        }),
        **_openai_sampling(served),
    }


def _openai_message() -> Schema:
    part = obj({"type": const("text"), "text": string()}, ["type", "text"], extra=True,
               description="Only text parts are supported.")
    call = obj({"function": obj({"name": string(), "arguments": nullable(any_of(
        string(description="JSON text of an object."), obj({}, extra=True)))}, ["name"],
        extra=True), **optional({"id": string(), "type": const("function")})},
        ["function"], extra=True)
    return obj({
        "role": enum("system", "developer", "user", "assistant", "tool"),
        **optional({
            "content": any_of(string(), array(part)),
            "name": string(), "tool_calls": array(call), "tool_call_id": string(),
            "refusal": string(), "reasoning_content": string(),
        })}, ["role"])


def _response_format() -> Schema:
    spec = obj({"schema": _json_schema_object(),
                **optional({"name": string(), "description": string(), "strict": boolean()})},
               ["schema"])
    return any_of(obj({"type": enum("text", "json_object")}, ["type"]),
                  obj({"type": const("json_schema"), "json_schema": spec},
                      ["type", "json_schema"]))


def _chat_request(served: Served) -> Schema:
    tool_choice = any_of(enum("none", "auto", "required"),
                         obj({"type": const("function"),
                              "function": obj({"name": string()}, ["name"])},
                             ["type", "function"]),
                         description="Anything but 'none' needs tools; a named function must "
                                     "be one of them.")
    return obj({
        **_openai_common(served),
        "messages": array(_openai_message(), min_items=1),
        **optional({
            "max_tokens": integer(1, BIG), "max_completion_tokens": integer(1, BIG),
            "logprobs": boolean(),
            "top_logprobs": integer(0, 20, description="Needs logprobs: true."),
            "response_format": _response_format(),
            "tools": _tools(), "tool_choice": tool_choice,
            "parallel_tool_calls": boolean(),
            "store": const(False, description="Storing completions is not supported."),
            "metadata": obj({}, extra=string()),
        }),
    }, ["model", "messages"], dependentSchemas={
        "tool_choice": unless("tool_choice", enum("none", None), "tools",
                              array(ANY, min_items=1)),
        "top_logprobs": unless("top_logprobs", enum(0, None), "logprobs", const(True)),
        "stream_options": _needs_stream()})


def _completion_request(served: Served) -> Schema:
    tok = _token_id(served)
    prompt = any_of(string(minLength=1), array(string(minLength=1), min_items=1, max_items=1),
                    array(tok, min_items=1),
                    description="One prompt: a string or a list of token ids.")
    return obj({
        **_openai_common(served), "prompt": prompt,
        **optional({
            "max_tokens": integer(1, BIG, default=16),
            "logprobs": integer(0, 5, description="Alternatives to report per token."),
            "echo": const(False), "suffix": string(maxLength=0), "best_of": const(1),
        }),
    }, ["model", "prompt"], dependentSchemas={"stream_options": _needs_stream()})


def _embedding_request(served: Served) -> Schema:
    tok = _token_id(served)
    tokens = array(tok, min_items=1)
    text = string(minLength=1)
    value = any_of(text, tokens, array(any_of(text, tokens), min_items=1),
                   description=f"Texts or token lists, each at most {served.ctx} tokens.")
    return obj({"model": _model_name(served), "input": value, **optional({
        "encoding_format": enum("float", "base64"),
        "dimensions": integer(1, served.model.config.n_embd,
                              description="Keep the first N dimensions (then normalised)."),
        "user": string()})}, ["model", "input"])


def _openai_schemas(served: Served) -> dict[str, Schema]:
    usage = obj({"prompt_tokens": integer(0), "completion_tokens": integer(0),
                 "total_tokens": integer(0)},
                ["prompt_tokens", "completion_tokens", "total_tokens"], extra=True)
    call = obj({"id": string(), "type": const("function"), "function": obj(
        {"name": string(), "arguments": string(contentMediaType=JSON)}, ["name", "arguments"],
        extra=True), "index": integer(0)}, ["id", "type", "function"], extra=True)
    finish = enum("stop", "length", "tool_calls", "cancelled")
    chat_logprobs = nullable(obj({"content": array(_logprob_entry()), "refusal": ANY},
                                 ["content"], extra=True))
    message = obj({"role": const("assistant"), "content": nullable(string()),
                   "refusal": ANY, "reasoning_content": string(), "tool_calls": array(call)},
                  ["role", "content"], extra=True)
    head = {"id": string(), "created": integer(0), "model": string()}
    legacy_lp = nullable(obj({"tokens": array(string()), "token_logprobs": array(number()),
                              "top_logprobs": array(obj({}, extra=number())),
                              "text_offset": array(integer(0))},
                             ["tokens", "token_logprobs", "top_logprobs", "text_offset"],
                             extra=True))
    model_card = obj({"id": string(), "object": const("model"), "created": integer(0),
                      "owned_by": string()}, ["id", "object", "created", "owned_by"], extra=True)
    return {
        "OpenAIChatRequest": _chat_request(served),
        "OpenAICompletionRequest": _completion_request(served),
        "OpenAIEmbeddingRequest": _embedding_request(served),
        "OpenAIUsage": usage,
        "OpenAIChatCompletion": obj({
            **head, "object": const("chat.completion"), "system_fingerprint": string(),
            "choices": array(obj({"index": integer(0), "message": message,
                                  "finish_reason": finish, "logprobs": chat_logprobs},
                                 ["index", "message", "finish_reason", "logprobs"],
                                 extra=True)),
            "usage": ref("OpenAIUsage")},
            ["id", "object", "created", "model", "choices", "usage"], extra=True),
        "OpenAIChatCompletionChunk": obj({
            **head, "object": const("chat.completion.chunk"), "system_fingerprint": string(),
            "choices": array(obj({
                "index": integer(0), "finish_reason": nullable(finish),
                "logprobs": chat_logprobs,
                "delta": obj({"role": const("assistant"), "content": string(),
                              "reasoning_content": string(), "tool_calls": array(call)},
                             extra=True)}, ["index", "delta", "finish_reason"], extra=True)),
            "usage": nullable(ref("OpenAIUsage"))},
            ["id", "object", "created", "model", "choices"], extra=True,
            description="Choices are empty in the final usage chunk (include_usage)."),
        "OpenAICompletion": obj({
            **head, "object": const("text_completion"),
            "choices": array(obj({"index": integer(0), "text": string(),
                                  "finish_reason": nullable(finish), "logprobs": legacy_lp},
                                 ["index", "text", "finish_reason", "logprobs"], extra=True)),
            "usage": nullable(ref("OpenAIUsage"))},
            ["id", "object", "created", "model", "choices"], extra=True,
            description="Also the shape of each streamed chunk (usage null or absent)."),
        "OpenAIEmbeddingList": obj({
            "object": const("list"), "model": string(),
            "data": array(obj({"object": const("embedding"), "index": integer(0),
                               "embedding": any_of(array(number()), string(
                                   contentEncoding="base64",
                                   description="float32 little-endian, base64"))},
                              ["object", "index", "embedding"], extra=True)),
            "usage": obj({"prompt_tokens": integer(0), "total_tokens": integer(0)},
                         ["prompt_tokens", "total_tokens"], extra=True)},
            ["object", "data", "model", "usage"], extra=True),
        "OpenAIModel": model_card,
        "OpenAIModelList": obj({"object": const("list"), "data": array(ref("OpenAIModel"))},
                               ["object", "data"], extra=True),
    }


# -- Anthropic ---------------------------------------------------------------------------------


def _anthropic_text_block() -> Schema:
    return obj({"type": const("text"), "text": string(),
                **optional({"cache_control": obj({}, extra=True), "citations": array(ANY)})},
               ["type", "text"])


def _anthropic_message() -> Schema:
    cache = {"cache_control": nullable(obj({}, extra=True))}
    text = _anthropic_text_block()
    texts = any_of(string(), array(text))
    tool_result = obj({"type": const("tool_result"), **optional({
        "tool_use_id": string(), "content": texts, "is_error": boolean()}), **cache},
        ["type"], extra=True)
    tool_use = obj({"type": const("tool_use"), "name": string(), **optional({
        "id": string(), "input": obj({}, extra=True)}), **cache}, ["type", "name"], extra=True)
    thinking = obj({"type": const("thinking"), **optional({"thinking": string(),
                                                           "signature": string()})},
                   ["type"], extra=True, description="Not replayed into the prompt.")
    redacted = obj({"type": const("redacted_thinking"), "data": nullable(string())}, ["type"],
                   extra=True)
    return any_of(
        obj({"role": const("user"), "content": any_of(string(), array(any_of(text,
                                                                             tool_result)))},
            ["role", "content"]),
        obj({"role": const("assistant"), "content": any_of(string(), array(any_of(
            text, tool_use, thinking, redacted)))}, ["role", "content"]),
        obj({"role": const("system"), "content": texts}, ["role", "content"]),
    )


def _anthropic_prepare_fields(served: Served) -> dict[str, Schema]:
    """What ``AnthropicApi._prepare`` reads (shared by /v1/messages and count_tokens)."""
    tool = obj({"name": string(), **optional({
        "description": string(), "input_schema": _json_schema_object(),
        "type": const("custom"), "cache_control": obj({}, extra=True)})}, ["name"],
        description="Client tools only (server tools get 400).")
    flags = optional({"disable_parallel_tool_use": boolean()})
    tool_choice = any_of(
        obj({"type": enum("auto", "any", "none"), **flags, "name": nullable(string())},
            ["type"]),
        obj({"type": const("tool"), "name": string(), **flags}, ["type", "name"]),
        description="auto/any/tool need tools; 'tool' names one of them.")
    kinds = ["adaptive", "disabled"] + (["enabled", "between_tools"] if served.can_think() else [])
    thinking = obj({"type": enum(*kinds), "budget_tokens": nullable(integer(0, BIG))},
                   ["type"], extra=True,
                   description="Enabling thinking needs a model whose template thinks.")
    fmt = obj({"type": const("json_schema"), "schema": _json_schema_object()},
              ["type", "schema"], extra=True)
    edit = obj({"type": string(pattern="^clear_thinking_")}, ["type"], extra=True)
    return {
        "model": _model_name(served),
        "messages": array(_anthropic_message(), min_items=1),
        **optional({
            "system": any_of(string(), array(_anthropic_text_block())),
            "tools": array(tool), "tool_choice": tool_choice, "thinking": thinking,
            "cache_control": obj({}, extra=True),
            "output_config": obj(optional({"format": fmt, "effort": enum("high", "xhigh",
                                                                          "max")})),
            "speed": const("standard"),
            "context_management": obj(optional({"edits": array(edit)}),
                                      description="Only thinking-clearing edits."),
        }),
    }


def _anthropic_tools_needed() -> dict[str, Schema]:
    return {"tool_choice": unless("tool_choice", any_of({"type": "null"}, obj(
        {"type": const("none")}, ["type"], extra=True)), "tools", array(ANY, min_items=1))}


def _anthropic_schemas(served: Served) -> dict[str, Schema]:
    usage = obj({"input_tokens": integer(0), "output_tokens": integer(0),
                 "cache_creation_input_tokens": integer(0), "cache_read_input_tokens": integer(0)},
                ["input_tokens", "output_tokens"], extra=True)
    blocks = any_of(
        obj({"type": const("text"), "text": string()}, ["type", "text"], extra=True),
        obj({"type": const("thinking"), "thinking": string(), "signature": string()},
            ["type", "thinking"], extra=True),
        obj({"type": const("tool_use"), "id": string(), "name": string(),
             "input": obj({}, extra=True)}, ["type", "id", "name", "input"], extra=True))
    stop_reason = nullable(enum("end_turn", "max_tokens", "stop_sequence", "tool_use"))
    request = obj({**_anthropic_prepare_fields(served), "max_tokens": integer(1, BIG),
                   **optional({
                       "stop_sequences": _stop(), "stream": boolean(),
                       "temperature": number(0, 1), "top_p": number(None, 1, above=0),
                       "top_k": integer(0, BIG),
                       "metadata": obj(optional({"user_id": string()})),
                       "service_tier": enum("auto", "standard_only"),
                   })}, ["model", "messages", "max_tokens"],
                  dependentSchemas=_anthropic_tools_needed())
    event_names = ["message_start", "content_block_start", "content_block_delta",
                   "content_block_stop", "message_delta", "message_stop", "error"]
    return {
        "AnthropicMessagesRequest": request,
        "AnthropicCountTokensRequest": obj(_anthropic_prepare_fields(served),
                                           ["model", "messages"],
                                           dependentSchemas=_anthropic_tools_needed()),
        "AnthropicMessage": obj({
            "id": string(), "type": const("message"), "role": const("assistant"),
            "model": string(), "content": array(blocks), "stop_reason": stop_reason,
            "stop_sequence": nullable(string()), "usage": usage},
            ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"],
            extra=True),
        "AnthropicStreamEvent": obj({"type": enum(*event_names)}, ["type"], extra=True,
                                    description="message_start, content_block_start/delta/"
                                                "stop per block, message_delta, message_stop"
                                                " (or an error event)."),
        "AnthropicTokenCount": obj({"input_tokens": integer(0)}, ["input_tokens"], extra=True),
    }


# -- Ollama ------------------------------------------------------------------------------------


def _ollama_options(served: Served) -> Schema:
    perf = {"numa": boolean(), "num_batch": integer(), "num_gpu": integer(),
            "main_gpu": integer(), "low_vram": boolean(), "f16_kv": boolean(),
            "logits_all": boolean(), "use_mmap": boolean(), "use_mlock": boolean(),
            "num_thread": integer()}
    return obj(optional({
        "num_ctx": integer(1, served.ctx, description="Context for this request (at most the "
                                                      "server's)."),
        "num_predict": integer(-2, description="Tokens to generate (-1, -2: up to the "
                                               "context)."),
        "seed": integer(description="A negative seed means random."),
        "temperature": number(0, 100), "top_k": integer(0, BIG),
        "top_p": number(0, 1, description="0 means off."), "min_p": number(0, 1),
        "repeat_penalty": number(0.01, 100), "repeat_last_n": integer(-1, BIG),
        "presence_penalty": number(-100, 100), "frequency_penalty": number(-100, 100),
        "stop": _stop(),
        # samplers that are not implemented: accepted at their "off" values only
        "tfs_z": const(1), "typical_p": const(1), "mirostat": const(0),
        "penalize_newline": const(True),
        **{k: described(v, "Accepted; no effect here.") for k, v in perf.items()},
    }), description="Unknown options get 400.")


def _ollama_generation_fields(served: Served) -> dict[str, Schema]:
    think = any_of(boolean(), enum("low", "medium", "high")) if served.can_think() else \
        const(False, description="This model does not think.")
    return optional({
        "stream": boolean(default=True),
        "format": any_of(enum("", "json"), _json_schema_object()),
        "options": _ollama_options(served),
        "keep_alive": any_of(string(), number(), description="Accepted; the model stays "
                                                             "loaded."),
        "think": think, "logprobs": boolean(), "top_logprobs": integer(0, 20),
    })


def _ollama_message() -> Schema:
    call = obj({"function": obj({"name": string(), "arguments": nullable(obj({}, extra=True))},
                                ["name"], extra=True)}, ["function"], extra=True)
    return obj({"role": enum("system", "user", "assistant", "tool"), **optional({
        "content": string(), "images": array(string(), max_items=0,
                                             description="No vision input."),
        "tool_calls": array(call), "thinking": string(), "tool_name": string(),
        "tool_call_id": string()})}, ["role"])


def _ollama_schemas(served: Served) -> dict[str, Schema]:
    tok = _token_id(served)
    stats = {"total_duration": integer(0), "load_duration": integer(0),
             "prompt_eval_count": integer(0), "prompt_eval_duration": integer(0),
             "eval_count": integer(0), "eval_duration": integer(0)}
    reason = enum("stop", "length", "cancelled", "load")
    call = obj({"id": string(), "function": obj({"name": string(),
                                                 "arguments": obj({}, extra=True)},
                                                ["name", "arguments"], extra=True)},
               ["function"], extra=True)
    message = obj({"role": const("assistant"), "content": string(), "thinking": string(),
                   "tool_calls": array(call)}, ["role", "content"], extra=True)
    head = {"model": string(), "created_at": string(format="date-time"), "done": boolean(),
            "done_reason": reason, "logprobs": array(_logprob_entry()), **stats}
    details = obj({"parent_model": string(), "format": string(), "family": string(),
                   "families": array(string()), "parameter_size": string(),
                   "quantization_level": string()}, ["format", "family"], extra=True)
    card = {"name": string(), "model": string(), "size": integer(0), "digest": string(),
            "details": details}
    return {
        "OllamaOptions": _ollama_options(served),
        "OllamaChatRequest": obj({"model": _model_name(served), **optional({
            "messages": described(array(_ollama_message()), "Empty: just load the model."),
            "tools": _tools()}), **_ollama_generation_fields(served)}, ["model"]),
        "OllamaGenerateRequest": obj({"model": _model_name(served), **optional({
            "prompt": string(description="Empty (and no context): just load the model."),
            "system": string(), "context": array(tok, description="Tokens of an earlier "
                                                                  "exchange."),
            "raw": boolean(description="No chat template (system is not allowed then)."),
            "suffix": string(maxLength=0), "template": string(maxLength=0),
            "images": array(string(), max_items=0, description="No vision input."),
        }), **_ollama_generation_fields(served)}, ["model"]),
        "OllamaShowRequest": obj({**optional({"model": _model_name(served),
                                              "name": string(description="The older "
                                                             "spelling of model."),
                                              "verbose": boolean(), "system": string(),
                                              "template": string(),
                                              "options": obj({}, extra=True)})},
                                 anyOf=[obj({"model": _model_name(served)}, ["model"],
                                            extra=True),
                                        obj({"name": _model_name(served)}, ["name"],
                                            extra=True)]),
        "OllamaEmbedRequest": obj({
            "model": _model_name(served),
            "input": any_of(string(minLength=1), array(string(minLength=1), min_items=1)),
            **optional({"truncate": boolean(default=True), "options": _ollama_options(served),
                        "keep_alive": any_of(string(), number()),
                        "dimensions": integer(1, served.model.config.n_embd)})},
            ["model", "input"]),
        "OllamaEmbeddingsRequest": obj({
            "model": _model_name(served), "prompt": string(minLength=1),
            **optional({"options": _ollama_options(served),
                        "keep_alive": any_of(string(), number())})}, ["model", "prompt"]),
        "OllamaChatResponse": obj({**head, "message": message},
                                  ["model", "created_at", "message", "done"], extra=True,
                                  description="Also the shape of each streamed line."),
        "OllamaGenerateResponse": obj({**head, "response": string(), "thinking": string(),
                                       "context": array(integer(0))},
                                      ["model", "created_at", "response", "done"], extra=True,
                                      description="Also the shape of each streamed line."),
        "OllamaTags": obj({"models": array(obj({**card, "modified_at": string()},
                                               ["name", "model", "size", "digest", "details"],
                                               extra=True))}, ["models"], extra=True),
        "OllamaPs": obj({"models": array(obj({**card, "expires_at": string(),
                                              "size_vram": integer(0),
                                              "context_length": integer(0)},
                                             ["name", "model", "size", "details"],
                                             extra=True))}, ["models"], extra=True),
        "OllamaShow": obj({"modelfile": string(), "parameters": string(), "template": string(),
                           "details": details, "model_info": obj({}, extra=True),
                           "capabilities": array(string()), "modified_at": string()},
                          ["modelfile", "template", "details", "model_info", "capabilities"],
                          extra=True),
        "OllamaEmbed": obj({"model": string(), "embeddings": array(array(number())),
                            "total_duration": integer(0), "load_duration": integer(0),
                            "prompt_eval_count": integer(0)}, ["model", "embeddings"],
                           extra=True),
        "OllamaEmbeddings": obj({"embedding": array(number())}, ["embedding"], extra=True),
        "OllamaVersion": obj({"version": string()}, ["version"], extra=True),
    }


# -- operations --------------------------------------------------------------------------------

_GENERATION_ERRORS = (400, 401, 403, 404, 413, 415, 500, 503)


def _operation(path: str, op_id: str, summary: str, tag: str, ok: Schema, *,
               body: Optional[str] = None, errors: Iterable[int] = (), description: str = "",
               parameters: Optional[list[Schema]] = None) -> Schema:
    op: Schema = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": ref(body)}}}
    statuses = list(errors)
    if dialect_for_path(path) == "anthropic":  # Anthropic's clients expect 529 when overloaded
        statuses = [529 if s == 503 else s for s in statuses]
    if path in OPEN_PATHS:
        statuses = [s for s in statuses if s != 401]
    op["responses"] = {"200": ok, **_errors(path, statuses)}
    if path in OPEN_PATHS:
        op["security"] = []
    return op


def _head_of(get: Schema) -> Schema:
    """The HEAD twin aiohttp registers for every GET route: the same answers without bodies."""
    head: Schema = {k: v for k, v in get.items() if k not in ("responses", "description")}
    head["operationId"] = "head_" + get["operationId"]
    head["summary"] = "Headers of: " + get["summary"]
    head["responses"] = {code: {"description": resp["description"],
                                **({"headers": resp["headers"]} if "headers" in resp else {})}
                         for code, resp in get["responses"].items()}
    return head


def _paths(served: Served) -> dict[str, dict[str, Schema]]:
    oa, an, ol = "OpenAI", "Anthropic", "Ollama"
    openai_error, anthropic_error = ref("OpenAIError"), ref("AnthropicError")
    chat_stream = _sse_event(any_of(ref("OpenAIChatCompletionChunk"), openai_error),
                             note="A chat.completion.chunk, an error object (the stream then "
                                  "ends), or the text [DONE] last.", done=True)
    completion_stream = _sse_event(any_of(ref("OpenAICompletion"), openai_error),
                                   note="A text_completion chunk, an error object, or [DONE] "
                                        "last.", done=True)
    anthropic_stream = _sse_event(any_of(ref("AnthropicStreamEvent"), anthropic_error),
                            ["message_start", "content_block_start", "content_block_delta",
                             "content_block_stop", "message_delta", "message_stop", "error"])
    asset = {"/": ("chat_page", "The browser chat page", "text/html"),
             "/static/chat.js": ("chat_script", "The chat page's script", "text/javascript"),
             "/static/chat.css": ("chat_style", "The chat page's style sheet", "text/css")}
    p: dict[str, dict[str, Schema]] = {}
    for path, (op_id, summary, media) in asset.items():
        p[path] = {"get": _operation(path, op_id, summary, "Server",
                                     _ok(summary + ".", {media: string()}), errors=(304, 403))}
    p["/health"] = {"get": _operation(
        "/health", "health", "Liveness and queue depth", "Server",
        _ok("The server is up.", {JSON: obj({
            "status": const("ok"), "model": string(),
            "queue": obj({"waiting": integer(0), "running": integer(0)},
                         ["waiting", "running"], extra=True)},
            ["status", "model", "queue"], extra=True)}), errors=(403, 500))}
    p["/metrics"] = {"get": _operation(
        "/metrics", "metrics", "Prometheus metrics", "Server",
        _ok("Metrics in the Prometheus text format 0.0.4.", {"text/plain": string()}),
        errors=(401, 403, 500))}
    p["/openapi.json"] = {"get": _operation(
        "/openapi.json", "openapi", "This document", "Server",
        _ok("The OpenAPI 3.1 description of the server.", {JSON: obj({}, extra=True)}),
        errors=(401, 403, 500))}

    p["/v1/chat/completions"] = {"post": _operation(
        "/v1/chat/completions", "openai_chat", "Chat completion (OpenAI)", oa,
        _ok("The completion (stream: false) or its chunks as server-sent events.",
            {JSON: ref("OpenAIChatCompletion"), SSE: chat_stream}),
        body="OpenAIChatRequest", errors=_GENERATION_ERRORS)}
    p["/v1/completions"] = {"post": _operation(
        "/v1/completions", "openai_completions", "Text completion (OpenAI legacy)", oa,
        _ok("The completion or its chunks as server-sent events.",
            {JSON: ref("OpenAICompletion"), SSE: completion_stream}),
        body="OpenAICompletionRequest", errors=_GENERATION_ERRORS)}
    p["/v1/embeddings"] = {"post": _operation(
        "/v1/embeddings", "openai_embeddings", "Embeddings (OpenAI)", oa,
        _ok("Mean-pooled, L2-normalised final hidden states.",
            {JSON: ref("OpenAIEmbeddingList")}),
        body="OpenAIEmbeddingRequest", errors=_GENERATION_ERRORS)}
    p["/v1/models"] = {"get": _operation(
        "/v1/models", "openai_models", "List models (OpenAI)", oa,
        _ok("The served model.", {JSON: ref("OpenAIModelList")}), errors=(401, 403, 500))}
    p["/v1/models/{model}"] = {"get": _operation(
        "/v1/models/{model}", "openai_model", "Describe a model (OpenAI)", oa,
        _ok("The model card.", {JSON: ref("OpenAIModel")}), errors=(401, 403, 404, 500),
        parameters=[{"name": "model", "in": "path", "required": True,
                     "schema": _model_name(served)}])}

    p["/v1/messages"] = {"post": _operation(
        "/v1/messages", "anthropic_messages", "Create a message (Anthropic)", an,
        _ok("The message (stream: false) or its events as server-sent events.",
            {JSON: ref("AnthropicMessage"), SSE: anthropic_stream}),
        body="AnthropicMessagesRequest", errors=_GENERATION_ERRORS)}
    p["/v1/messages/count_tokens"] = {"post": _operation(
        "/v1/messages/count_tokens", "anthropic_count_tokens", "Count prompt tokens "
        "(Anthropic)", an, _ok("The prompt's token count.", {JSON: ref("AnthropicTokenCount")}),
        body="AnthropicCountTokensRequest", errors=(400, 401, 403, 404, 413, 415, 500))}

    for path, op_id, summary, body, answer in (
            ("/api/chat", "ollama_chat", "Chat (Ollama)", "OllamaChatRequest",
             "OllamaChatResponse"),
            ("/api/generate", "ollama_generate", "Generate (Ollama)", "OllamaGenerateRequest",
             "OllamaGenerateResponse")):
        p[path] = {"post": _operation(
            path, op_id, summary, ol,
            _ok("Newline-delimited JSON (stream, the default) or one object; a load request "
                "(nothing to generate) always gets one object.",
                {JSON: ref(answer), NDJSON: any_of(ref(answer), ref("OllamaError"))}),
            body=body, errors=_GENERATION_ERRORS)}
    p["/api/embed"] = {"post": _operation(
        "/api/embed", "ollama_embed", "Embeddings (Ollama)", ol,
        _ok("One vector per input.", {JSON: ref("OllamaEmbed")}), body="OllamaEmbedRequest",
        errors=_GENERATION_ERRORS)}
    p["/api/embeddings"] = {"post": _operation(
        "/api/embeddings", "ollama_embeddings", "Embedding (Ollama, legacy)", ol,
        _ok("The prompt's vector.", {JSON: ref("OllamaEmbeddings")}),
        body="OllamaEmbeddingsRequest", errors=_GENERATION_ERRORS)}
    p["/api/show"] = {"post": _operation(
        "/api/show", "ollama_show", "Describe the model (Ollama)", ol,
        _ok("Template, details and architecture facts.", {JSON: ref("OllamaShow")}),
        body="OllamaShowRequest", errors=(400, 401, 403, 404, 413, 415, 500))}
    for path, op_id, summary, answer in (
            ("/api/tags", "ollama_tags", "List models (Ollama)", "OllamaTags"),
            ("/api/ps", "ollama_ps", "Loaded models (Ollama)", "OllamaPs"),
            ("/api/version", "ollama_version", "Server version (Ollama)", "OllamaVersion")):
        p[path] = {"get": _operation(path, op_id, summary, ol, _ok(summary + ".",
                                                                   {JSON: ref(answer)}),
                                     errors=(401, 403, 500))}

    for item in p.values():  # aiohttp answers HEAD on every GET route
        if "get" in item:
            item["head"] = _head_of(item["get"])
    return p


def document(served: Served) -> dict:
    """The OpenAPI 3.1 document of a server answering for ``served``."""
    from .ollama import _version

    schemas: dict[str, Schema] = {**_error_schemas(), **_openai_schemas(served),
                                  **_anthropic_schemas(served), **_ollama_schemas(served)}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "Alloy serve", "version": _version(),
                 "description": "A local LLM server speaking the OpenAI (/v1/...), Anthropic "
                                "(/v1/messages) and Ollama (/api/...) APIs for one model: "
                                f"{served.name}. Errors come in the calling dialect's shape."},
        "tags": [{"name": "Server"}, {"name": "OpenAI"}, {"name": "Anthropic"},
                 {"name": "Ollama"}],
        "paths": _paths(served),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "The server's API key (when it runs with one)."},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        # the key is needed only when the server was started with one
        "security": [{}, {"bearer": []}, {"apiKey": []}],
    }


def routes(served: Served) -> list[web.RouteDef]:
    cached: dict[str, dict] = {}

    async def openapi(request: web.Request) -> web.Response:
        if "doc" not in cached:
            cached["doc"] = document(served)
        return json_response(cached["doc"])

    return [web.get("/openapi.json", openapi)]
