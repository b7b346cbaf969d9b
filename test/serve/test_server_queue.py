"""Queue limit (503/529 + Retry-After), cancellation on disconnect, API keys, /health, /metrics."""

import json
import re
import socket
import threading

import httpx
import openai
import pytest

from alloy.serve.config import ServeConfig
from alloy.serve.server import ServerThread

MODEL = "smollm2:135m"
KEY = "sekrit"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServeConfig(model=MODEL, port=0, ctx=512, parallel=1, max_queue=1, api_key=KEY)) as s:
        yield s


def metric(server, name):
    text = httpx.get(server.url + "/metrics", headers=AUTH).text
    m = re.search(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def test_api_key(server):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    r = httpx.post(server.url + "/v1/chat/completions", json=body)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = httpx.post(server.url + "/v1/messages", json=body, headers={"x-api-key": "wrong"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    c = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    assert c.chat.completions.create(model=MODEL, messages=body["messages"], max_tokens=1,
                                     temperature=0).usage.completion_tokens == 1


def test_queue_full_gives_503_and_disconnect_cancels(server, wait_for):
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 400, "stream": True,
            "temperature": 0}
    cancelled_before = metric(server, "alloy_requests_cancelled_total")
    generated_before = metric(server, "alloy_generated_tokens_total")
    with httpx.Client(timeout=120) as http:
        with http.stream("POST", server.url + "/v1/completions", json=body, headers=AUTH) as a:
            lines = a.iter_lines()
            assert next(lines).startswith("data: ")  # A is running
            queued = {}

            def run_b():
                queued["r"] = httpx.post(server.url + "/api/generate", headers=AUTH, timeout=300,
                                         json={"model": MODEL, "prompt": "Hi", "raw": True,
                                               "stream": False, "options": {"num_predict": 1}})

            b = threading.Thread(target=run_b)
            b.start()
            wait_for(lambda: httpx.get(server.url + "/health").json()["queue"]["waiting"] == 1,
                     "B to be queued")
            c = http.post(server.url + "/v1/chat/completions", headers=AUTH, json={
                "model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
            assert c.status_code == 503 and 1 <= int(c.headers["Retry-After"]) <= 30
            assert c.json()["error"]["type"] == "server_overloaded"
            m = http.post(server.url + "/v1/messages", headers=AUTH, json={
                "model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
            assert m.status_code == 529 and m.json()["error"]["type"] == "overloaded_error"
            assert 1 <= int(m.headers["Retry-After"]) <= 30
        # leaving the block closed A's connection mid-stream
    b.join(timeout=300)
    assert queued["r"].status_code == 200 and queued["r"].json()["eval_count"] == 1
    wait_for(lambda: metric(server, "alloy_requests_cancelled_total") > cancelled_before,
             "A to be cancelled")
    assert metric(server, "alloy_generated_tokens_total") - generated_before < 400
    assert metric(server, "alloy_requests_rejected_total") == 2


def test_non_streaming_disconnect_cancels(server, wait_for):
    cancelled_before = metric(server, "alloy_requests_cancelled_total")
    generated_before = metric(server, "alloy_generated_tokens_total")
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Tell a story."}],
                       "stream": False, "options": {"temperature": 0, "num_predict": 400}})
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall((f"POST /api/chat HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}"
                      f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                      + body).encode())
        wait_for(lambda: metric(server, "alloy_generated_tokens_total") > generated_before,
                 "generation to start")
    # the socket is closed while the (non-streamed) reply is still being generated
    wait_for(lambda: metric(server, "alloy_requests_cancelled_total") > cancelled_before,
             "the request to be cancelled")
    assert metric(server, "alloy_generated_tokens_total") - generated_before < 400


def test_metrics_format(server):
    text = httpx.get(server.url + "/metrics", headers=AUTH).text
    assert "# TYPE alloy_http_requests_total counter" in text
    assert re.search(r'alloy_http_requests_total\{method="POST",route="/v1/chat/completions",'
                     r'status="503"\} 1', text)
    assert re.search(r'alloy_queue_waiting\{model="smollm2:135m"\} 0', text)


class _FailingModel:
    """Wraps the real model; the first single-token decode step raises."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def forward(self, tokens, cache, last_only=False):
        if len(tokens) == 1:
            raise RuntimeError("simulated engine failure")
        return self._model.forward(tokens, cache)


def test_engine_failure_mid_stream_reaches_each_client(server, monkeypatch):
    import anthropic
    import ollama

    engine = server.served.engine
    monkeypatch.setattr(engine, "model", _FailingModel(engine.model))
    msgs = [{"role": "user", "content": "Hello there"}]
    oai = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.APIError, match="simulated engine failure"):
        list(oai.chat.completions.create(model=MODEL, messages=msgs, max_tokens=5, stream=True))
    with pytest.raises(openai.InternalServerError, match="simulated engine failure"):
        oai.chat.completions.create(model=MODEL, messages=msgs, max_tokens=5)
    ant = anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0)
    with pytest.raises(anthropic.APIError, match="simulated engine failure"):
        with ant.messages.stream(model=MODEL, messages=msgs, max_tokens=5) as s:
            s.get_final_message()
    oll = ollama.Client(host=server.url, headers=AUTH)
    with pytest.raises(ollama.ResponseError, match="simulated engine failure"):
        list(oll.chat(model=MODEL, messages=msgs, stream=True, options={"num_predict": 5}))
    monkeypatch.undo()
    ok = oai.chat.completions.create(model=MODEL, messages=msgs, max_tokens=1)
    assert ok.usage.completion_tokens == 1
