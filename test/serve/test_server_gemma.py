"""The quickstart default model, gemma3:270m (SentencePiece, 262k vocabulary, BOS, no
template in the file), through the OpenAI and Anthropic clients."""

import json

import anthropic
import jsonschema
import openai
import pytest

from alloy.serve.config import ServeConfig
from alloy.serve.server import ServerThread

pytestmark = pytest.mark.slow
MODEL = "gemma3:270m"
Q = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServeConfig(model=MODEL, port=0, ctx=256)) as s:
        yield s


def test_chat_stream_and_usage(server):
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    full = c.chat.completions.create(model=MODEL, messages=Q, max_tokens=8, temperature=0)
    text = full.choices[0].message.content
    assert text.strip() and not text.startswith(" ")  # no stray leading space from "▁"
    prompt = server.served.tokenizer.apply_chat_template(Q, tokenize=True)
    assert prompt[0] == server.served.tokenizer.bos_token_id
    assert full.usage.prompt_tokens == len(prompt)
    chunks = list(c.chat.completions.create(model=MODEL, messages=Q, max_tokens=8, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == text
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_anthropic_stop_sequence(server):
    c = anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0)
    full = c.messages.create(model=MODEL, messages=Q, max_tokens=8,
                             extra_body={"temperature": 0}).content[0].text
    stop = "apital"
    assert stop in full
    r = c.messages.create(model=MODEL, messages=Q, max_tokens=8, stop_sequences=[stop],
                          extra_body={"temperature": 0})
    assert r.content[0].text == full[: full.index(stop)] and r.stop_reason == "stop_sequence"


def test_json_schema_with_large_vocabulary(server):
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    schema = {"type": "object", "properties": {"capital": {"type": "string",
              "enum": ["Paris", "Berlin"]}}, "required": ["capital"], "additionalProperties": False}
    r = c.chat.completions.create(model=MODEL, messages=Q, max_tokens=24, temperature=0,
                                  response_format={"type": "json_schema", "json_schema": {
                                      "name": "a", "schema": schema}})
    jsonschema.validate(json.loads(r.choices[0].message.content), schema)
