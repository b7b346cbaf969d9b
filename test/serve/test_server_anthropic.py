"""`alloy serve` through the official Anthropic client, against a real server and model."""

import httpx
import anthropic
import pytest

from alloy.serve.config import ServeConfig
from alloy.serve.server import ServerThread

MODEL = "smollm2:135m"
Q = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServeConfig(model=MODEL, port=0, ctx=512)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)


def create(client, **kw):
    args = dict(model=MODEL, messages=Q, max_tokens=10, extra_body={"temperature": 0})
    args.update(kw)
    return client.messages.create(**args)


@pytest.fixture(scope="module")
def greedy(client):
    return create(client)


def test_message_and_count_tokens(client, greedy):
    r = greedy
    assert r.type == "message" and r.role == "assistant" and r.model == MODEL
    assert r.content[0].type == "text" and "Paris" in r.content[0].text
    assert r.stop_reason in ("end_turn", "max_tokens")
    assert client.messages.count_tokens(model=MODEL, messages=Q).input_tokens == r.usage.input_tokens
    with_system = client.messages.count_tokens(model=MODEL, messages=Q, system="Be brief.")
    assert with_system.input_tokens != r.usage.input_tokens


def test_stream_matches(client, greedy):
    with client.messages.stream(model=MODEL, messages=Q, max_tokens=10,
                                extra_body={"temperature": 0}) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == greedy.content[0].text == final.content[0].text
    assert final.usage.output_tokens == greedy.usage.output_tokens
    assert final.stop_reason == greedy.stop_reason


def test_stop_sequence_and_max_tokens(client):
    r = create(client, stop_sequences=["pital of"])
    assert r.content[0].text == "The ca"
    assert r.stop_reason == "stop_sequence" and r.stop_sequence == "pital of"
    r = create(client, max_tokens=2)
    assert r.stop_reason == "max_tokens" and r.usage.output_tokens == 2


TOOLS = [{"name": "get_weather", "description": "Current weather of a city",
          "input_schema": {"type": "object", "properties": {
              "city": {"type": "string", "enum": ["Paris", "London"]}},
              "required": ["city"], "additionalProperties": False}}]


def test_forced_tool_use_and_result(client):
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    r = create(client, messages=msgs, tools=TOOLS, max_tokens=30,
               tool_choice={"type": "tool", "name": "get_weather"})
    assert r.stop_reason == "tool_use"
    use = [b for b in r.content if b.type == "tool_use"][0]
    assert use.name == "get_weather" and use.input["city"] in ("Paris", "London")
    assert use.id.startswith("toolu_")
    with client.messages.stream(model=MODEL, messages=msgs, tools=TOOLS, max_tokens=60,
                                tool_choice={"type": "any"},
                                extra_body={"temperature": 0}) as s:
        final = s.get_final_message()
    assert [b.type for b in final.content] == ["tool_use"] and final.content[0].input["city"]
    follow = create(client, tools=TOOLS, max_tokens=3, messages=msgs + [
        {"role": "assistant", "content": [{"type": "tool_use", "id": use.id,
                                           "name": "get_weather", "input": use.input}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": "Sunny, 21 C"}]}])
    assert follow.usage.input_tokens > r.usage.input_tokens


def test_structured_output(client):
    import json

    import jsonschema

    schema = {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Nice"]}},
              "required": ["city"], "additionalProperties": False}
    r = create(client, max_tokens=30, output_config={"format": {"type": "json_schema",
                                                                "schema": schema}})
    assert r.stop_reason == "end_turn"
    jsonschema.validate(json.loads(r.content[0].text), schema)


def test_claude_code_shaped_request(server):
    """The shape Claude Code sends: ?beta=true, system blocks with cache_control, a
    mid-conversation system message, metadata, adaptive thinking, effort, context edits."""
    body = {"model": MODEL, "max_tokens": 3, "stream": True, "temperature": 0,
            "system": [{"type": "text", "text": "You are a CLI."},
                       {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
                {"role": "system", "content": "The date is today."}],
            "tools": [dict(TOOLS[0], cache_control={"type": "ephemeral"})],
            "metadata": {"user_id": "u1"}, "thinking": {"type": "adaptive"},
            "output_config": {"effort": "high"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}
    with httpx.stream("POST", server.url + "/v1/messages?beta=true", json=body, timeout=120,
                      headers={"anthropic-version": "2023-06-01",
                               "anthropic-beta": "claude-code-20250219"}) as r:
        assert r.status_code == 200
        events = [line.removeprefix("event: ") for line in r.iter_lines()
                  if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-2:] == ["message_delta", "message_stop"]
    body["context_management"] = {"edits": [{"type": "clear_tool_uses_20250919"}]}
    r = httpx.post(server.url + "/v1/messages", json=body, timeout=60)
    assert r.status_code == 400 and "context_management.edits[0].type" in r.text


def test_errors_in_anthropic_shape(client, server):
    with pytest.raises(anthropic.NotFoundError) as e:
        create(client, model="no-such-model")
    assert e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError) as e:
        create(client, extra_body={"temperature": 1.5})
    assert e.value.body == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "temperature: must be between 0.0 and 1.0, got 1.5"}}
    with pytest.raises(anthropic.BadRequestError) as e:
        create(client, container="c1")
    assert "container" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as e:
        create(client, output_config={"effort": "low"})
    assert "output_config.effort" in e.value.body["error"]["message"]
    with pytest.raises(anthropic.BadRequestError) as e:
        create(client, messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "AAAA"}}]}])
    assert "messages[0].content[0].type" in e.value.body["error"]["message"]
    r = httpx.post(server.url + "/v1/messages", content=b"[1,", headers={
        "content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"] == "error"
