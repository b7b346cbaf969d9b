"""The server's guards on a real server: Host and Origin checks (DNS rebinding, cross-site pages), CORS
answers, body media types, body size and nesting limits, header bytes, seeds, the default token cap, and
error messages without the server's paths."""

import json
import socket

import httpx
import pytest

from alloy.serve.api.errors import without_paths
from alloy.serve.config import ServeConfig
from alloy.serve.gguf.testing import write_synthetic_model
from alloy.serve.server import ServerThread

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(write_synthetic_model(tmp_path_factory.mktemp("guards") / "tiny.gguf", "llama").path)


@pytest.fixture(scope="module")
def server(tiny):
    config = ServeConfig(model=tiny, port=0, ctx=128, max_body_bytes=4096, default_max_tokens=3,
                         allowed_hosts=("alloy.internal",), cors_origins=("https://app.example",), api_key=None)
    with ServerThread(config) as s:
        yield s


def post(server, path="/v1/chat/completions", body=None, headers=None, content=None):
    body = body if body is not None else {"model": server.served.name, **CHAT}
    return httpx.post(server.url + path, headers=headers or {}, timeout=60,
                      **({"content": content} if content is not None else {"json": body}))


@pytest.mark.parametrize("host,status", [("evil.example", 403), ("evil.example:80", 403), ("localhost", 200),
                                         ("127.0.0.1:9", 200), ("[::1]:9", 200), ("alloy.internal", 200)])
def test_host_header(server, host, status):
    r = post(server, headers={"Host": host})
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["error"]["type"] == "permission_error" and "--allowed-host" in r.json()["error"]["message"]


def test_origin_checks_and_cors(server):
    own = server.url
    for origin, allowed in [("https://evil.example", False), ("null", False), ("http://localhost:3000", True),
                            (own, True), ("https://app.example", True), ("https://app.example.evil", False)]:
        r = post(server, headers={"Origin": origin})
        assert (r.status_code == 200) == allowed, (origin, r.status_code, r.text)
        assert (r.headers.get("Access-Control-Allow-Origin") == origin) == allowed
    r = httpx.options(server.url + "/v1/chat/completions", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    r = httpx.options(server.url + "/v1/chat/completions", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    # a streamed reply carries the header too (it is sent before the handler returns)
    with httpx.stream("POST", server.url + "/v1/chat/completions", headers={"Origin": "https://app.example"},
                      json={"model": server.served.name, **CHAT, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "https://app.example"


def test_simple_media_types_are_refused(server):
    body = json.dumps({"model": server.served.name, **CHAT})
    r = post(server, content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]
    r = post(server, content=body, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 415
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert post(server, content=body, headers={**form, "Origin": "http://localhost:1"}).status_code == 415
    assert post(server, content=body, headers=form).status_code == 200   # curl -d: no Origin, allowed


def test_body_size_and_nesting_limits(server):
    big = {"model": server.served.name, **CHAT, "user": "x" * 5000}
    r = post(server, body=big)
    assert r.status_code == 413 and "4096" in r.json()["error"]["message"]

    def chunks():   # no Content-Length: the limit still holds while reading
        yield json.dumps(big).encode()
    r = httpx.post(server.url + "/v1/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    for depth in (1800, 65):   # past the parser's recursion limit, and just past ours
        nested = "[" * depth + "]" * depth
        r = post(server, content='{"model": "m", "messages": ' + nested + "}",
                 headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "nested more than 64 levels" in r.json()["error"]["message"]
    r = post(server, path="/v1/messages", content='{"a":' + "[" * 1800 + "]" * 1800 + "}",
             headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_negative_seed_means_random_and_default_cap(server):
    r = post(server, body={"model": server.served.name, "messages": CHAT["messages"], "seed": -1})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 3   # the server's default cap applied
    r = post(server, path="/api/generate", body={"model": server.served.name, "prompt": "hi", "stream": False,
                                                 "options": {"seed": -1, "num_predict": 2}})
    assert r.status_code == 200, r.text


def test_non_utf8_api_key_is_a_401(tiny):
    with ServerThread(ServeConfig(model=tiny, port=0, ctx=128, api_key="sekrit")) as s:
        host, port = s.url.removeprefix("http://").split(":")
        body = json.dumps({"model": s.served.name, **CHAT}).encode()
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nx-api-key: \xff\xfe\xc3\r\n"
                         b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\nConnection: close\r\n\r\n" + body)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]


def test_error_messages_carry_no_server_paths():
    assert without_paths("[12:00] /build/xgrammar/cpp/json_schema_converter.cc:719: Unsupported type") == \
        "[12:00] …/json_schema_converter.cc:719: Unsupported type"
    assert without_paths(r"cannot open C:\Users\me\model.gguf") == "cannot open …/model.gguf"
    for text in ("messages[0].content: expected a string", "a/b and 3/4", "see http://example.com/a/b"):
        assert without_paths(text) == text


def test_grammar_limits_and_integral_numbers(server):
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": "(a|b){1,20000}"}}}
    r = post(server, body={"model": server.served.name, **CHAT,
                           "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}})
    assert r.status_code == 400 and "{1,20000} exceeds 1000" in r.json()["error"]["message"]
    r = post(server, body={"model": server.served.name, **CHAT, "max_tokens": 2.0})   # JSON's 2.0 is an integer
    assert r.status_code == 200, r.text
    r = post(server, body={"model": server.served.name, **CHAT, "logit_bias": {" 5": 1}})
    assert r.status_code == 400 and "logit_bias" in r.json()["error"]["message"]


@pytest.mark.parametrize("field,value,message", [
    ("parallel", 0, "parallel must be >= 1"), ("spec", "eagle", "spec 'eagle' is not one of none, pld"),
    ("draft_max", 16, "draft_max must be in 1..15"), ("kv_type", "q4_0", "kv_type 'q4_0' is not one of"),
    ("bookmarks", -1, "bookmarks must be >= 0"), ("kv_budget_mb", 0, "kv_budget_mb must be >= 1"),
    ("max_body_bytes", 10, "max_body_bytes must be >= 1024"), ("max_json_depth", 2, "max_json_depth must be >= 4"),
    ("default_max_tokens", 0, "default_max_tokens must be >= 1")])
def test_serve_config_rejects_bad_settings(field, value, message):
    with pytest.raises(ValueError, match=message):
        ServeConfig(**{field: value})
