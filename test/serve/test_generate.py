"""load / generate / stream_generate on a tiny synthetic model with its real tokenizer."""
from __future__ import annotations

import numpy as np
import pytest

import alloy.serve
from alloy.serve import generate, load, stream_generate
from alloy.serve.generate import StreamingDetokenizer
from alloy.serve.gguf.testing import SyntheticConfig, write_synthetic_model


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "tiny-qwen3.gguf"
    write_synthetic_model(path, "qwen3", SyntheticConfig(seed=11))
    return load(str(path))


def test_exports_are_the_functions():
    import importlib

    module = importlib.import_module("alloy.serve.generate")  # the submodule must not shadow the function
    assert alloy.serve.generate is module.generate is generate
    assert alloy.serve.load is load and alloy.serve.stream_generate is stream_generate


def test_load_names_the_model(loaded):
    model, tokenizer = loaded
    assert model.name == "tiny-qwen3" and model.config.arch == "qwen3"
    assert tokenizer.vocab_size == model.config.n_vocab


def test_greedy_stream_matches_a_hand_loop(loaded):
    model, tokenizer = loaded
    ids = tokenizer.encode("The quick brown fox")
    eos = set(tokenizer.eos_token_ids)
    responses = list(stream_generate(model, tokenizer, ids, max_tokens=12, temperature=0,
                                     logit_bias={t: -1e9 for t in eos}))
    assert [r.token for r in responses] == _greedy_by_hand_no_eos(model, ids, 12, eos)
    assert [r.finish_reason for r in responses] == [None] * 11 + ["length"]
    assert responses[-1].generation_tokens == 12 and responses[-1].prompt_tokens == len(ids)
    assert "".join(r.text for r in responses) == tokenizer.decode([r.token for r in responses])


def _greedy_by_hand_no_eos(model, ids, n, eos):
    cache = model.new_cache(len(ids) + n)
    logits = model.forward(ids, cache)[-1].astype(np.float64)
    out = []
    for _ in range(n):
        logits[list(eos)] = -np.inf
        out.append(int(np.argmax(logits)))
        logits = model.forward([out[-1]], cache)[-1].astype(np.float64)
    return out


def test_text_prompt_and_generate(loaded):
    model, tokenizer = loaded
    text = generate(model, tokenizer, "Hello world", max_tokens=6, temperature=0)
    pieces = list(stream_generate(model, tokenizer, "Hello world", max_tokens=6, temperature=0))
    expected = "".join(p.text for p in pieces)
    assert text == expected
    stopped_at = next((i for i, p in enumerate(pieces) if p.finish_reason), None)
    assert stopped_at == len(pieces) - 1


def test_eos_stops_with_reason_stop(loaded):
    model, tokenizer = loaded
    eos = tokenizer.eos_token_id
    responses = list(stream_generate(model, tokenizer, "Hello", max_tokens=10, temperature=0,
                                     logit_bias={eos: 1e9}))
    assert len(responses) == 1
    assert responses[0].token == eos and responses[0].finish_reason == "stop" and responses[0].text == ""


def test_seeded_sampling_is_reproducible(loaded):
    model, tokenizer = loaded
    run = lambda: [r.token for r in stream_generate(model, tokenizer, "sea shells", max_tokens=8,
                                                     temperature=1.0, seed=5)]
    assert run() == run()


def test_mask_fn_constrains_every_token(loaded):
    model, tokenizer = loaded
    allowed = tokenizer.encode(" the sea")
    mask = np.zeros(model.config.n_vocab, bool)
    mask[allowed] = True
    seen = []

    def mask_fn(generated):
        seen.append(list(generated))
        return mask

    tokens = [r.token for r in stream_generate(model, tokenizer, "x", max_tokens=5, temperature=1.0,
                                               seed=0, mask_fn=mask_fn)]
    assert set(tokens) <= set(allowed)
    assert seen == [tokens[:i] for i in range(5)]


def test_streaming_detokenizer_holds_back_partial_characters(loaded):
    _, tokenizer = loaded
    text = "Über naïve café – ☃ 日本語 done"
    ids = tokenizer.encode(text, add_special_tokens=False)
    single = [tokenizer.decode([i]) for i in ids]
    assert any("\ufffd" in s for s in single), "the vocabulary should split some character across tokens"
    d = StreamingDetokenizer(tokenizer)
    pieces = [d.add(i) for i in ids] + [d.flush()]
    assert all("\ufffd" not in p for p in pieces)
    assert "".join(pieces) == tokenizer.decode(ids) == text


def test_bad_arguments(loaded):
    model, tokenizer = loaded
    with pytest.raises(ValueError, match="max_tokens"):
        next(stream_generate(model, tokenizer, "x", max_tokens=0))
    with pytest.raises(ValueError, match="empty"):
        next(stream_generate(model, tokenizer, [], max_tokens=3))
    with pytest.raises(TypeError, match="either"):
        next(stream_generate(model, tokenizer, "x", sampling=alloy.serve.SamplingParams(), temperature=0))
    with pytest.raises(ValueError, match="context"):
        next(stream_generate(model, tokenizer, [1] * model.config.n_ctx_train))
    with pytest.raises(LookupError):
        load("no-such-model:1b")


def test_text_prompt_gets_one_bos(tmp_path):
    from alloy.serve.generate import encode_prompt
    from alloy.serve.gguf.reader import GGUFFile
    from alloy.serve.gguf.tokenizer import Tokenizer

    path = tmp_path / "bos.gguf"
    write_synthetic_model(path, "llama", SyntheticConfig(seed=12),
                          metadata={"tokenizer.ggml.add_bos_token": True})
    tok = Tokenizer.from_gguf(GGUFFile(path))
    bos_text = tok.decode([tok.bos_token_id])
    plain = encode_prompt(tok, "hello world")
    assert plain[0] == tok.bos_token_id and plain[1] != tok.bos_token_id
    assert encode_prompt(tok, bos_text + "hello world") == plain


def test_a_kept_cache_reuses_the_prompt_prefix(loaded):
    model, tokenizer = loaded
    first = tokenizer.encode("The quick brown fox jumps")
    fresh = [r.token for r in stream_generate(model, tokenizer, first, max_tokens=4, temperature=0)]
    cache = model.new_cache(64)
    run1 = list(stream_generate(model, tokenizer, first, max_tokens=4, temperature=0, cache=cache))
    assert [r.token for r in run1] == fresh and run1[-1].cached_tokens == 0
    # the next turn extends the conversation: everything already in the cache is reused
    second = first + [r.token for r in run1] + tokenizer.encode(" over the lazy dog")
    expected = [r.token for r in stream_generate(model, tokenizer, second, max_tokens=4, temperature=0)]
    run2 = list(stream_generate(model, tokenizer, second, max_tokens=4, temperature=0, cache=cache))
    assert [r.token for r in run2] == expected
    assert run2[-1].cached_tokens == len(first) + 3   # the last generated token was never fed back
    # the same prompt again: all but its last token come from the cache
    run3 = list(stream_generate(model, tokenizer, second, max_tokens=4, temperature=0, cache=cache))
    assert [r.token for r in run3] == expected and run3[-1].cached_tokens == len(second) - 1
