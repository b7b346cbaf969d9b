"""`alloy serve` through the official Ollama client, against a real server and model."""

import json

import httpx
import jsonschema
import ollama
import pytest

from alloy.serve.config import ServeConfig
from alloy.serve.server import ServerThread

MODEL = "smollm2:135m"
Q = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = {"temperature": 0, "num_predict": 8}


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServeConfig(model=MODEL, port=0, ctx=512)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.url)


def test_chat_stream_matches_full(client, server):
    r = client.chat(model=MODEL, messages=Q, options=GREEDY)
    assert r.done and r.message.role == "assistant" and "Paris" in r.message.content
    assert r.prompt_eval_count == len(server.served.tokenizer.apply_chat_template(Q, tokenize=True))
    assert 1 <= r.eval_count <= 8 and r.done_reason in ("stop", "length")
    parts = list(client.chat(model=MODEL, messages=Q, options=GREEDY, stream=True))
    assert "".join(p.message.content for p in parts) == r.message.content
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].eval_count == r.eval_count and parts[-1].total_duration > 0


def test_stop_option_and_num_predict(client):
    r = client.chat(model=MODEL, messages=Q, options=dict(GREEDY, stop=["pital of"]))
    assert r.message.content == "The ca" and r.done_reason == "stop"
    r = client.chat(model=MODEL, messages=Q, options={"temperature": 0, "num_predict": 2})
    assert r.done_reason == "length" and r.eval_count == 2


def test_seed_reproducible(client):
    opts = {"temperature": 1.0, "seed": 7, "num_predict": 5}
    a = client.chat(model=MODEL, messages=Q, options=opts).message.content
    assert client.chat(model=MODEL, messages=Q, options=opts).message.content == a


def test_generate_raw_and_context(client):
    r = client.generate(model=MODEL, prompt="The capital of France is", raw=True,
                        options={"temperature": 0, "num_predict": 3})
    assert "Paris" in r.response and r.done
    n_prompt = r.prompt_eval_count
    assert len(r.context) == n_prompt + r.eval_count
    follow = client.generate(model=MODEL, prompt=" and of Italy is", raw=True, context=r.context,
                             options={"temperature": 0, "num_predict": 3})
    assert follow.prompt_eval_count > len(r.context)
    templated = client.generate(model=MODEL, prompt="Say hi", system="Be brief.",
                                options={"temperature": 0, "num_predict": 3})
    assert templated.prompt_eval_count > 10  # the chat template wrapped the prompt
    loaded = client.generate(model=MODEL)  # empty prompt: "load the model"
    assert loaded.done and loaded.done_reason == "load"


def test_format_schema(client):
    schema = {"type": "object", "properties": {"city": {"type": "string",
              "enum": ["Paris", "Lyon"]}, "big": {"type": "boolean"}},
              "required": ["city", "big"], "additionalProperties": False}
    r = client.chat(model=MODEL, messages=Q, format=schema, options={"temperature": 0,
                                                                        "num_predict": 40})
    jsonschema.validate(json.loads(r.message.content), schema)


def test_tools_with_logprobs(client):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = client.chat(model=MODEL, messages=Q, tools=tools, logprobs=True, top_logprobs=2,
                    options={"temperature": 0, "num_predict": 3})
    assert r.done and len(r.logprobs) == r.eval_count
    assert all(lp.top_logprobs[0].logprob >= lp.top_logprobs[1].logprob for lp in r.logprobs)


def test_metadata_endpoints(client, server):
    tags = client.list()
    assert [m.model for m in tags.models] == [MODEL]
    assert tags.models[0].details.format == "gguf" and tags.models[0].size > 50_000_000
    show = client.show(MODEL)
    assert show.modelinfo["general.architecture"] == "llama"
    assert show.modelinfo["llama.context_length"] == 8192 and "completion" in show.capabilities
    assert "im_start" in show.template
    ps = client.ps()
    assert ps.models[0].name == MODEL and ps.models[0].context_length == 512
    version = httpx.get(server.url + "/api/version").json()
    assert isinstance(version["version"], str) and version["version"]


def test_embed(client, server):
    r = client.embed(model=MODEL, input=["hello world", "hello world"])
    assert len(r.embeddings) == 2 and len(r.embeddings[0]) == server.served.model.config.n_embd
    assert r.embeddings[0] == pytest.approx(r.embeddings[1], abs=1e-6)
    legacy = httpx.post(server.url + "/api/embeddings", json={"model": MODEL,
                                                             "prompt": "hello world"}).json()
    assert legacy["embedding"] == pytest.approx(r.embeddings[0], abs=1e-6)


def test_errors_in_ollama_shape(client, server):
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="llama3:8b", messages=Q)
    assert e.value.status_code == 404 and "llama3:8b" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=MODEL, messages=Q, options={"mirostat": 2})
    assert e.value.status_code == 400 and "options.mirostat" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=MODEL, messages=Q, think=True)
    assert e.value.status_code == 400 and "think" in e.value.error
    r = httpx.post(server.url + "/api/chat", content=b"{oops")
    assert r.status_code == 400 and set(r.json()) == {"error"}
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model=MODEL, messages=[{"role": "user", "content": "word " * 600}])
    assert e.value.status_code == 400 and "num_ctx" in e.value.error
