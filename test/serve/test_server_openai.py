"""`alloy serve` through the official OpenAI client, against a real server and model."""

import json
import threading

import httpx
import jsonschema
import numpy as np
import openai
import pytest

from alloy.serve.config import ServeConfig
from alloy.serve.server import ServerThread

MODEL = "smollm2:135m"
Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServeConfig(model=MODEL, port=0, ctx=512, max_queue=16)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def chat(client, **kw):
    args = dict(model=MODEL, messages=Q, max_tokens=8, temperature=0)
    args.update(kw)
    return client.chat.completions.create(**args)


def test_models(client):
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "alloy"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


@pytest.fixture(scope="module")
def greedy(client):
    return chat(client, max_tokens=10)


def test_chat_and_usage(greedy, server):
    r = greedy
    tok = server.served.tokenizer
    expected_prompt = tok.apply_chat_template(Q, tokenize=True)
    assert r.object == "chat.completion" and r.model == MODEL
    assert r.usage.prompt_tokens == len(expected_prompt)
    assert 1 <= r.usage.completion_tokens <= 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")


def test_stream_matches_and_reports_usage(client, greedy):
    full = greedy
    chunks = list(chat(client, max_tokens=10, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])


def test_max_tokens_gives_length(client):
    r = chat(client, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    r = chat(client, max_completion_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2


def test_stop_sequence_across_tokens_never_leaks(client, greedy):
    full = greedy.choices[0].message.content
    assert full.startswith("The capital of France")
    stop = "pital of Fr"  # spans the tokens " capital", " of", " France"
    r = chat(client, max_tokens=10, stop=[stop])
    assert r.choices[0].message.content == full[: full.index(stop)] == "The ca"
    assert r.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in
                       chat(client, max_tokens=10, stop=stop, stream=True) if c.choices)
    assert streamed == "The ca"


def test_seed_reproducible_and_n_choices(client):
    kw = dict(temperature=1.2, seed=1234, max_tokens=4, n=2)
    a, b = chat(client, **kw), chat(client, **kw)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert [c.index for c in a.choices] == [0, 1]
    assert 2 <= a.usage.completion_tokens <= 8  # summed over both choices


def test_logprobs_greedy_picks_the_top(client):
    r = chat(client, logprobs=True, top_logprobs=3, max_tokens=5)
    lps = r.choices[0].logprobs.content
    assert len(lps) == r.usage.completion_tokens
    for lp in lps:
        assert len(lp.top_logprobs) == 3
        assert lp.top_logprobs[0].token == lp.token
        assert lp.logprob == pytest.approx(lp.top_logprobs[0].logprob)
        assert lp.top_logprobs[0].logprob >= lp.top_logprobs[1].logprob >= lp.top_logprobs[2].logprob
        assert lp.logprob <= 0
    assert "".join(lp.token for lp in lps).startswith(r.choices[0].message.content)


SCHEMA = {"type": "object", "properties": {
    "answer": {"type": "string", "enum": ["Paris", "London", "Rome"]},
    "sure": {"type": "boolean"}}, "required": ["answer", "sure"], "additionalProperties": False}


def test_json_schema_response_format(client):
    r = chat(client, max_tokens=60, temperature=0.7, seed=3, response_format={
        "type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)


def test_json_object_response_format(client):
    r = chat(client, max_tokens=48, response_format={"type": "json_object"},
             messages=[{"role": "user", "content": "Reply with a JSON object about Paris."}])
    if r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(r.choices[0].message.content), dict)
    else:  # ran out of tokens: still a prefix of a JSON object
        assert r.choices[0].message.content.lstrip().startswith("{")


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["Paris", "London"]}},
        "required": ["city"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Local time of a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "enum": ["Paris", "London"]}},
            "required": ["city"], "additionalProperties": False}}}]


def test_tool_choice_required_and_named(client):
    msgs = [{"role": "user", "content": "What's the weather in Paris?"}]
    r = chat(client, messages=msgs, tools=TOOLS, tool_choice="required", max_tokens=40)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name in ("get_weather", "get_time")
    assert json.loads(call.function.arguments)["city"] in ("Paris", "London")
    r = chat(client, messages=msgs, tools=TOOLS, max_tokens=40,
             tool_choice={"type": "function", "function": {"name": "get_time"}})
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time" and call.id.startswith("call_")
    # streamed: the call arrives as one tool_calls delta
    chunks = list(chat(client, messages=msgs, tools=TOOLS, max_tokens=40, stream=True,
                       tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [d.function.name for d in deltas] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_tool_result_round_trip(client):
    msgs = [{"role": "user", "content": "What's the weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21 C"}]
    r = chat(client, messages=msgs, tools=TOOLS, tool_choice="none", max_tokens=4)
    assert r.choices[0].message.tool_calls is None and r.usage.completion_tokens >= 1


def test_legacy_completions(client):
    r = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4,
                                  temperature=0, logprobs=2)
    text = r.choices[0].text
    assert r.usage.completion_tokens == 4 and r.choices[0].finish_reason == "length"
    assert "Paris" in text
    assert len(r.choices[0].logprobs.tokens) == 4
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=MODEL, prompt="The capital of France is", max_tokens=4, temperature=0,
        stream=True) if c.choices)
    assert streamed == text


def test_embeddings(client, server):
    r = client.embeddings.create(model=MODEL, input=["The cat sat.", "The cat sat.", "Stocks fell."])
    v = [np.array(d.embedding) for d in r.data]
    assert len(v[0]) == server.served.model.config.n_embd
    assert np.linalg.norm(v[0]) == pytest.approx(1.0, abs=1e-5)
    assert float(v[0] @ v[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(v[0] @ v[2]) < 0.999
    assert r.usage.prompt_tokens == 3 * len(server.served.text_tokens("The cat sat."))


def raw(server, path, body: bytes, **headers):
    return httpx.post(server.url + path, content=body, timeout=60,
                      headers={"content-type": "application/json", **headers})


def test_errors_in_openai_shape(client, server):
    r = raw(server, "/v1/chat/completions", b"{not json")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError) as e:
        chat(client, model="gpt-4o")
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, extra_body={"mirostat": 2})
    assert e.value.body["param"] == "mirostat"
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, temperature=3.5)
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    assert e.value.body["param"] == "messages[0].content[0].type"
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})
    assert "nope" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, messages=[{"role": "user", "content": "word " * 600}])
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": SCHEMA, "examples": []}})
    assert e.value.body["param"] == "response_format.json_schema.examples"
    r = httpx.get(server.url + "/v1/nothing-here")
    assert r.status_code == 404 and "error" in r.json()
    r = raw(server, "/v1/chat/completions", b'{"model": "' + b"x" * (33 << 20) + b'"}')
    assert r.status_code == 413 and r.json()["error"]["message"].startswith("request body too large")


def test_concurrent_streams_complete_and_unmixed(client):
    prompts = [f"{i} plus {i} equals" for i in range(8)]
    kw = dict(model=MODEL, max_tokens=2, temperature=0)
    expected = [client.completions.create(prompt=p, **kw).choices[0].text for p in prompts]
    results = [None] * len(prompts)

    def work(i):
        s = client.completions.create(prompt=prompts[i], stream=True, **kw)
        results[i] = "".join(c.choices[0].text for c in s if c.choices)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert results == expected
