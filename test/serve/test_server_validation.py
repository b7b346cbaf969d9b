"""Malformed request bodies get 400 naming the field, in each dialect's error shape, from a real
server: regressions for the 500s (crashes) fuzzing against /openapi.json found, and for fields
the handlers used to accept with any type."""

import json

import httpx
import pytest

from alloy.serve.config import ServeConfig
from alloy.serve.gguf.testing import write_synthetic_model
from alloy.serve.server import ServerThread

M = "MODEL"  # replaced by the served model's name
N_VOCAB = "N_VOCAB"  # replaced by its vocabulary size
U = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
DEEP = "[" * 100_000  # deeper than Python's JSON decoder can recurse


def chat(**kw):
    return "/v1/chat/completions", {"model": M, "messages": U, "max_tokens": 2, **kw}


def assistant(**fields):
    return chat(messages=[{"role": "assistant", "content": "x", **fields}])


def anthropic(**kw):
    return "/v1/messages", {"model": M, "messages": U, "max_tokens": 2, **kw}


def ollama_chat(**kw):
    return "/api/chat", {"model": M, "messages": U, "stream": False, **kw}


def ollama_generate(**kw):
    return "/api/generate", {"model": M, "prompt": "hi", "stream": False, **kw}


# (path, body) -> the field the 400 must name. "500" marks what crashed the server before.
CASES = {
    # -- OpenAI chat ---------------------------------------------------------------------
    "tool_choice function as a string (500)": (
        chat(tools=TOOLS, tool_choice={"type": "function", "function": "f"}),
        "tool_choice.function"),
    "tool_choice function as a string, no tools": (
        chat(tool_choice={"type": "function", "function": "x"}), "tool_choice.function"),
    "tool_choice of another type": (
        chat(tools=TOOLS, tool_choice={"type": "allowed_tools"}), "tool_choice.type"),
    "tool_choice name not a string": (
        chat(tools=TOOLS, tool_choice={"type": "function", "function": {"name": 5}}),
        "tool_choice.function"),
    "tool_calls a number (500)": (assistant(tool_calls=5), "messages[0].tool_calls"),
    "tool_calls entry a number": (assistant(tool_calls=[5]), "messages[0].tool_calls[0]"),
    "tool call arguments nested too deep (500)": (
        assistant(tool_calls=[{"function": {"name": "f", "arguments": DEEP}}]),
        "messages[0].tool_calls[0].function.arguments"),
    "tool call arguments not an object": (
        assistant(tool_calls=[{"function": {"name": "f", "arguments": "5"}}]),
        "messages[0].tool_calls[0].function.arguments"),
    "tool call id a number": (
        assistant(tool_calls=[{"id": 5, "function": {"name": "f", "arguments": "{}"}}]),
        "messages[0].tool_calls[0].id"),
    "tool call of another type": (
        assistant(tool_calls=[{"type": "x", "function": {"name": "f"}}]),
        "messages[0].tool_calls[0].type"),
    "content a number": (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    "content nested lists": (chat(messages=[{"role": "user", "content": [["a"]]}]),
                             "messages[0].content[0]"),
    "content part text a number": (
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
        "messages[0].content[0].text"),
    "message name a number": (chat(messages=[{"role": "user", "content": "x", "name": 5}]),
                              "messages[0].name"),
    "tool_call_id a list": (chat(messages=[{"role": "tool", "content": "x", "tool_call_id": []}]),
                            "messages[0].tool_call_id"),
    "stop a number": (chat(stop=5), "stop"),
    "n zero": (chat(n=0), "n"),
    "max_tokens negative": (chat(max_tokens=-1), "max_tokens"),
    "max_tokens wrong type beside max_completion_tokens": (
        chat(max_completion_tokens=2, max_tokens="x"), "max_tokens"),
    "include_usage not a boolean": (chat(stream=True, stream_options={"include_usage": "yes"}),
                                    "stream_options.include_usage"),
    "metadata value a number": (chat(metadata={"a": 1}), "metadata.a"),
    "store a string": (chat(store="yes"), "store"),
    "user a number": (chat(user=5), "user"),
    "json_schema name a number": (
        chat(response_format={"type": "json_schema", "json_schema": {"name": 5, "schema": {}}}),
        "response_format.json_schema.name"),
    # -- OpenAI completions and embeddings ----------------------------------------------------
    "completion prompt a lone surrogate (500)": (
        ("/v1/completions", {"model": M, "prompt": "\ud800", "max_tokens": 2}), "prompt"),
    "completion prompt of booleans": (
        ("/v1/completions", {"model": M, "prompt": [True, False], "max_tokens": 2}), "prompt"),
    "completion prompt token out of range": (
        ("/v1/completions", {"model": M, "prompt": [N_VOCAB], "max_tokens": 2}), "prompt"),
    "echo a string": (("/v1/completions", {"model": M, "prompt": "x", "echo": "yes"}), "echo"),
    "embedding token id past the vocabulary (500)": (
        ("/v1/embeddings", {"model": M, "input": [1, N_VOCAB]}), "input[0]"),
    "embedding token id negative (500)": (("/v1/embeddings", {"model": M, "input": [-1]}),
                                          "input[0]"),
    "embedding token list with a negative id (500)": (
        ("/v1/embeddings", {"model": M, "input": [[1, 2], [3, -5]]}), "input[1]"),
    "embedding input a lone surrogate (500)": (
        ("/v1/embeddings", {"model": M, "input": "\ud800"}), "input"),
    "embedding tokens of booleans": (("/v1/embeddings", {"model": M, "input": [True]}),
                                     "input[0]"),
    # -- Anthropic ---------------------------------------------------------------------------
    "system a number": (anthropic(system=5), "system"),
    "system block text a number": (anthropic(system=[{"type": "text", "text": 5}]),
                                   "system[0].text"),
    "max_tokens negative (anthropic)": (anthropic(max_tokens=-1), "max_tokens"),
    "context_management edits a number (500)": (
        anthropic(context_management={"edits": 5}), "context_management.edits"),
    "context edit type a number (500)": (
        anthropic(context_management={"edits": [{"type": 5}]}),
        "context_management.edits[0].type"),
    "text block text a number": (
        anthropic(messages=[{"role": "user", "content": [{"type": "text", "text": 5}]}]),
        "messages[0].content[0].text"),
    "text block with an unknown field": (
        anthropic(messages=[{"role": "user", "content": [{"type": "text", "text": "x",
                                                          "colour": 1}]}]),
        "messages[0].content[0].colour"),
    "tool_use input a number": (
        anthropic(messages=[{"role": "assistant", "content": [{"type": "tool_use", "name": "f",
                                                               "input": 5}]}]),
        "messages[0].content[0].input"),
    "tool_result is_error a string": (
        anthropic(messages=[{"role": "user", "content": [{"type": "tool_result",
                                                          "tool_use_id": "t", "is_error": "x"}]}]),
        "messages[0].content[0].is_error"),
    "tool_result content a number": (
        anthropic(messages=[{"role": "user", "content": [{"type": "tool_result",
                                                          "tool_use_id": "t", "content": 5}]}]),
        "messages[0].content[0].content"),
    "tool description a number": (
        anthropic(tools=[{"name": "f", "description": 5}]), "tools[0].description"),
    "cache_control a string": (anthropic(cache_control="x"), "cache_control"),
    "stream a string (anthropic)": (anthropic(stream="yes"), "stream"),
    "metadata user_id a number": (anthropic(metadata={"user_id": 5}), "metadata.user_id"),
    "tool_choice disable_parallel_tool_use a string": (
        anthropic(tools=[{"name": "f"}], tool_choice={"type": "auto",
                                                      "disable_parallel_tool_use": "x"}),
        "tool_choice.disable_parallel_tool_use"),
    "count_tokens context edits a number (500)": (
        ("/v1/messages/count_tokens", {"model": M, "messages": U,
                                       "context_management": {"edits": 5}}),
        "context_management.edits"),
    # -- Ollama ------------------------------------------------------------------------------
    "options temperature a string": (ollama_chat(options={"temperature": "hot"}),
                                     "options.temperature"),
    "options a string": (ollama_chat(options="x"), "options"),
    "options num_thread a string": (ollama_chat(options={"num_thread": "x"}),
                                    "options.num_thread"),
    "options use_mmap a number": (ollama_chat(options={"use_mmap": 3}), "options.use_mmap"),
    "options mirostat false": (ollama_chat(options={"mirostat": False}), "options.mirostat"),
    "options num_predict below -2": (ollama_chat(options={"num_predict": -3}),
                                     "options.num_predict"),
    "ollama tool_calls entry a number (500)": (
        ollama_chat(messages=[{"role": "assistant", "content": "", "tool_calls": [5]}]),
        "messages[0].tool_calls[0].function"),
    "ollama tool_calls a number (500)": (
        ollama_chat(messages=[{"role": "assistant", "content": "", "tool_calls": 5}]),
        "messages[0].tool_calls"),
    "ollama tool call arguments a string": (
        ollama_chat(messages=[{"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "f", "arguments": "{}"}}]}]),
        "messages[0].tool_calls[0].function.arguments"),
    "ollama images a string": (ollama_chat(messages=[{"role": "user", "content": "x",
                                                       "images": "abc"}]),
                               "messages[0].images"),
    "ollama messages a string": (ollama_chat(messages="hi"), "messages"),
    "think an unknown level": (ollama_chat(think="banana"), "think"),
    "keep_alive a list": (ollama_chat(keep_alive=[]), "keep_alive"),
    "load request with bad options": (ollama_chat(messages=[], options={"temperature": "x"}),
                                      "options.temperature"),
    "generate context of booleans": (ollama_generate(context=[True]), "context"),
    "generate context token out of range": (ollama_generate(context=[N_VOCAB]), "context"),
    "generate raw prompt a lone surrogate (500)": (ollama_generate(prompt="\ud800", raw=True),
                                                   "prompt"),
    "generate prompt a lone surrogate": (ollama_generate(prompt="\ud800"), "prompt"),
    "generate system a number": (ollama_generate(system=5), "system"),
    "generate load request with bad options": (
        ollama_generate(prompt="", options={"top_k": "x"}), "options.top_k"),
    "embed input a lone surrogate (500)": (("/api/embed", {"model": M, "input": "\ud800"}),
                                           "input"),
    "embeddings prompt a lone surrogate (500)": (
        ("/api/embeddings", {"model": M, "prompt": "\ud800"}), "prompt"),
    "show name a number beside model": (("/api/show", {"model": M, "name": 5}), "name"),
    "show verbose a string": (("/api/show", {"model": M, "verbose": "yes"}), "verbose"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    model = write_synthetic_model(tmp_path_factory.mktemp("validation") / "tiny.gguf", "llama")
    with ServerThread(ServeConfig(model=model.path, port=0, ctx=512, default_max_tokens=4)) as s:
        yield s


def _fill(value, served):
    if value == M:
        return served.name
    if value == N_VOCAB:
        return served.model.config.n_vocab
    if isinstance(value, dict):
        return {k: _fill(v, served) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, served) for v in value]
    return value


def _error_message(path: str, body: dict) -> str:
    if path.startswith("/v1/messages"):
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        return body["error"]["message"]
    if path.startswith("/api/"):
        assert set(body) == {"error"}
        return body["error"]
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]["message"]


@pytest.mark.parametrize("request_, field", CASES.values(), ids=list(CASES))
def test_malformed_field_is_a_400_naming_it(server, request_, field):
    path, body = request_
    # json.dumps escapes a lone surrogate as \ud800: valid JSON that is no Unicode text
    payload = json.dumps(_fill(body, server.served))
    r = httpx.post(server.url + path, content=payload,
                   headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400, r.text
    message = _error_message(path, r.json())
    assert message.startswith(field + ":"), message
    if path.startswith("/v1/") and not path.startswith("/v1/messages"):
        assert r.json()["error"]["param"] == field


def test_valid_neighbours_still_work(server):
    """The stricter checks leave the valid spellings alone."""
    name, url = server.served.name, server.url
    ok = [
        chat(tools=TOOLS, tool_choice={"type": "function", "function": {"name": "f"}}),
        assistant(tool_calls=[{"id": "c1", "type": "function",
                               "function": {"name": "f", "arguments": '{"a": 1}'}}]),
        assistant(tool_calls=[{"function": {"name": "f", "arguments": {"a": 1}}}]),
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
             metadata={"a": "b"}, store=False, user="u"),
        ("/v1/embeddings", {"model": M, "input": [[1, 2], "text", [0, 3]]}),
        anthropic(system=[{"type": "text", "text": "be brief", "cache_control":
                          {"type": "ephemeral"}}],
                  context_management={"edits": [{"type": "clear_thinking_20251015"}]}),
        anthropic(messages=[{"role": "assistant", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                          "content": "3", "is_error": False}]}]),
        ollama_chat(options={"num_thread": 2, "use_mmap": True, "mirostat": 0,
                             "num_predict": 2}, keep_alive="5m", think=False),
        ollama_chat(messages=[{"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "f", "arguments": {"a": 1}}}]}, *U],
            options={"num_predict": 2}),
        ollama_generate(context=[1, 2], options={"num_predict": 2}),
        ("/api/show", {"name": name}),
    ]
    for path, body in ok:
        r = httpx.post(url + path, json=_fill(body, server.served), timeout=60)
        assert r.status_code == 200, (path, r.text)
