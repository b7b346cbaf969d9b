"""Continuous batching: batched decode against single-sequence decode, concurrent requests
sharing the engine, prefix reuse across chat turns, cancellation inside a chunked prefill."""

import threading
import time

import httpx
import numpy as np
import pytest

from alloy.serve.config import ServeConfig
from alloy.serve.server import ServerThread

MODEL = "smollm2:135m"


@pytest.mark.parametrize("arch", ["llama", "qwen3", "gemma3"])
@pytest.mark.parametrize("engine", ["reference", "alloy"])
def test_decode_batch_matches_single_steps(synthetic_model, arch, engine):
    from alloy.serve.generate import engine_ops
    from alloy.serve.gguf.reader import GGUFFile
    from alloy.serve.models import model_from_gguf

    sm = synthetic_model(arch)
    model = model_from_gguf(GGUFFile(sm.path), engine_ops(engine))
    prompts = [[1, 5, 9, 3], [2, 7], [4, 4, 8, 1, 6, 2, 9]]   # different lengths: different positions
    batched = [model.new_cache(64) for _ in prompts]
    single = [model.new_cache(64) for _ in prompts]
    for p, a, b in zip(prompts, batched, single):
        model.forward(p, a, last_only=True)
        model.forward(p, b, last_only=True)
    tokens = [3, 11, 6]
    for _ in range(3):   # a few steps: each row must keep attending to its own cache only
        got = model.decode_batch(tokens, batched)
        want = np.concatenate([model.forward([t], c) for t, c in zip(tokens, single)])
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
        tokens = [int(t) for t in np.argmax(got, axis=1)]
    assert [c.length for c in batched] == [c.length for c in single] == [len(p) + 3 for p in prompts]
    with pytest.raises(ValueError, match="one token per distinct cache"):
        model.decode_batch([1, 2], [batched[0], batched[0]])


@pytest.fixture(scope="module", params=["alloy", "reference"])
def server(request):
    config = ServeConfig(model=MODEL, port=0, ctx=1024, parallel=2, max_queue=4, engine=request.param)
    with ServerThread(config) as s:
        yield s


def _complete(server, prompt, max_tokens, out, key):
    r = httpx.post(server.url + "/v1/completions", timeout=300, json={
        "model": MODEL, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0})
    out[key] = r


def test_concurrent_requests_decode_together_and_match_alone(server):
    prompts = {"a": "The three primary colours are", "b": "def fibonacci(n):"}
    alone = {}
    for key, prompt in prompts.items():
        _complete(server, prompt, 24, alone, key)
    engine = server.served.engine
    seen_running = []
    together = {}
    threads = [threading.Thread(target=_complete, args=(server, p, 24, together, k)) for k, p in prompts.items()]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        seen_running.append(engine.stats.running)
        time.sleep(0.005)
    for t in threads:
        t.join()
    assert max(seen_running) == 2, "both requests should hold a slot at once"
    for key in prompts:
        assert together[key].status_code == 200, together[key].text
        assert together[key].json()["choices"][0]["text"] == alone[key].json()["choices"][0]["text"]
    if server.config.engine == "reference":   # its ops batch decoding: steps ran with both rows
        assert engine.stats.batch_steps_total > 0


def test_second_chat_turn_prefills_only_what_is_new(server):
    engine = server.served.engine
    turn = [{"role": "user", "content": "Name a fruit that is yellow."}]
    r1 = httpx.post(server.url + "/v1/chat/completions", timeout=300, json={
        "model": MODEL, "messages": turn, "max_tokens": 8, "temperature": 0}).json()
    turn += [{"role": "assistant", "content": r1["choices"][0]["message"]["content"]},
             {"role": "user", "content": "And a red one?"}]
    reused_before = engine.stats.prompt_tokens_reused_total
    r2 = httpx.post(server.url + "/v1/chat/completions", timeout=300, json={
        "model": MODEL, "messages": turn, "max_tokens": 8, "temperature": 0}).json()
    reused = engine.stats.prompt_tokens_reused_total - reused_before
    assert reused >= r1["usage"]["prompt_tokens"] - 2   # the first turn's prompt came from the cache
    assert reused < r2["usage"]["prompt_tokens"]


def test_disconnect_during_prefill_cancels_before_generating(server, wait_for):
    engine = server.served.engine
    engine_chunk, engine.prefill_chunk = engine.prefill_chunk, 16   # many chunks: many chances to stop
    try:
        generated = engine.stats.generated_tokens_total
        cancelled = engine.stats.requests_cancelled
        prompt_total = engine.stats.prompt_tokens_total
        words = " ".join(f"word{i}" for i in range(150))
        with httpx.Client(timeout=60) as http:
            with http.stream("POST", server.url + "/v1/completions", json={
                    "model": MODEL, "prompt": words, "max_tokens": 50, "stream": True}) as r:
                assert r.status_code == 200
                wait_for(lambda: engine.stats.running == 1, "the request to start its prefill")
        wait_for(lambda: engine.stats.requests_cancelled > cancelled, "the prefill to be cancelled")
        assert engine.stats.generated_tokens_total == generated
        assert engine.stats.prompt_tokens_total == prompt_total   # the prompt never finished
    finally:
        engine.prefill_chunk = engine_chunk


CODE = '''def total_price(items, tax_rate):
    subtotal = 0
    for item in items:
        subtotal += item.price * item.quantity
    tax = subtotal * tax_rate
    return subtotal + tax
'''


@pytest.mark.parametrize("engine", ["alloy", "reference"])
def test_prompt_lookup_gives_the_greedy_output(engine):
    """Speculative decoding (prompt lookup) keeps greedy output token for token, and drafts get accepted
    on a task that repeats its input."""
    messages = [{"role": "user", "content": "Rename the variable subtotal to net in this code and "
                                            "reply with the whole code only:\n\n" + CODE}]
    replies, stats = {}, {}
    for spec in ("none", "pld"):
        config = ServeConfig(model=MODEL, port=0, ctx=1024, parallel=1, engine=engine, spec=spec)
        with ServerThread(config) as s:
            r = httpx.post(s.url + "/v1/chat/completions", timeout=300, json={
                "model": MODEL, "messages": messages, "max_tokens": 96, "temperature": 0})
            assert r.status_code == 200, r.text
            replies[spec] = r.json()["choices"][0]["message"]["content"]
            stats[spec] = s.served.engine.stats
    assert replies["pld"] == replies["none"]
    assert stats["none"].draft_tokens_total == 0
    assert stats["pld"].draft_tokens_accepted_total > 10, "a reply that repeats its input accepts drafts"
    assert stats["pld"].generated_tokens_total == stats["none"].generated_tokens_total


SYSTEM = "You are a careful assistant. " + " ".join(f"Rule {i}: answer briefly and politely." for i in range(30))


def _chat(url, question, max_tokens=6, headers=None):
    r = httpx.post(url + "/v1/chat/completions", timeout=300, headers=headers or {}, json={
        "model": MODEL, "max_tokens": max_tokens, "temperature": 0,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]})
    assert r.status_code == 200, r.text
    return r.json()


def test_concurrent_requests_branch_off_a_running_prefix(wait_for):
    """A request whose prompt shares a long prefix with a running one copies that prefix's keys and values
    instead of recomputing them, and answers as it would alone."""
    config = ServeConfig(model=MODEL, port=0, ctx=1024, parallel=2)
    with ServerThread(config) as s:
        engine = s.served.engine
        alone = _chat(s.url, "Name a red fruit.")["choices"][0]["message"]["content"]
        long_one = threading.Thread(target=_chat, args=(s.url, "Write a long poem about rivers.", 120))
        long_one.start()
        wait_for(lambda: engine.stats.generated_tokens_total > 8, "the first request to be decoding")
        copies, reused = engine.stats.prefix_copies_total, engine.stats.prompt_tokens_reused_total
        # the other slot holds the first request's prompt too: fill it with another prompt first
        httpx.post(s.url + "/v1/completions", timeout=300, json={"model": MODEL, "prompt": "Hello", "max_tokens": 1})
        copies = engine.stats.prefix_copies_total
        reply = _chat(s.url, "Name a red fruit.")
        long_one.join()
        assert engine.stats.prefix_copies_total == copies + 1
        assert engine.stats.prompt_tokens_reused_total - reused >= 200   # the system prompt came from the copy
        assert reply["choices"][0]["message"]["content"] == alone


def test_bookmark_keeps_a_prefix_warm():
    config = ServeConfig(model=MODEL, port=0, ctx=1024, parallel=1, bookmarks=2)
    with ServerThread(config) as s:
        engine = s.served.engine
        _chat(s.url, "Name a yellow fruit.", headers={"X-Alloy-Bookmark": "rules"})
        assert engine.stats.bookmarks == 1
        httpx.post(s.url + "/v1/completions", timeout=300, json={"model": MODEL, "prompt": "Hello", "max_tokens": 1})
        reused = engine.stats.prompt_tokens_reused_total
        _chat(s.url, "Name a green fruit.")   # the only slot now holds another prompt: the bookmark serves
        assert engine.stats.prompt_tokens_reused_total - reused >= 200
        r = httpx.post(s.url + "/v1/chat/completions", headers={"X-Alloy-Bookmark": "no spaces"},
                       json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 400 and "X-Alloy-Bookmark" in r.json()["error"]["message"]
    config = ServeConfig(model=MODEL, port=0, ctx=1024, parallel=1, bookmarks=0)
    with ServerThread(config) as s:   # no bookmarks kept: the same sequence recomputes the prefix
        _chat(s.url, "Name a yellow fruit.", headers={"X-Alloy-Bookmark": "rules"})
        httpx.post(s.url + "/v1/completions", timeout=300, json={"model": MODEL, "prompt": "Hello", "max_tokens": 1})
        reused = s.served.engine.stats.prompt_tokens_reused_total
        _chat(s.url, "Name a green fruit.")
        assert s.served.engine.stats.prompt_tokens_reused_total - reused < 10


def test_kv_budget_drops_cold_caches(wait_for):
    """Under a KV budget, a kept bookmark is dropped once a second running request needs the memory, and
    requests go on being served."""
    budget = 30 << 20
    config = ServeConfig(model=MODEL, port=0, ctx=1024, parallel=2, bookmarks=2, kv_budget_mb=budget >> 20)
    with ServerThread(config) as s:
        engine = s.served.engine
        _chat(s.url, "Name a yellow fruit.", headers={"X-Alloy-Bookmark": "rules"})   # a slot and a bookmark
        assert engine.stats.bookmarks == 1 and engine.stats.kv_evictions_total == 0
        assert engine.stats.kv_bytes <= budget
        long_one = threading.Thread(target=_chat, args=(s.url, "Write a long poem about rivers.", 60))
        long_one.start()
        wait_for(lambda: engine.stats.running == 1, "the first request to run")
        r = httpx.post(s.url + "/v1/completions", timeout=300, json={"model": MODEL, "prompt": "Hello " * 300,
                                                                        "max_tokens": 2})
        long_one.join()
        assert r.status_code == 200
        assert engine.stats.kv_evictions_total >= 1 and engine.stats.bookmarks == 0
        assert engine.stats.kv_bytes <= budget
        metrics = httpx.get(s.url + "/metrics").text
        assert "alloy_kv_evictions_total" in metrics and "alloy_kv_cache_bytes" in metrics
