"""Tokenizer built from GGUF metadata: llama.cpp goldens on the packaged models, rules on a tiny file."""
from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

from alloy.serve.gguf import tokenizer as tokenizer_mod
from alloy.serve.gguf.errors import GGUFError
from alloy.serve.gguf.reader import GGUFFile
from alloy.serve.gguf.resolve import resolve_model
from alloy.serve.gguf.tokenizer import Tokenizer

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _tiny():
    spec = importlib.util.spec_from_file_location("tiny_gguf", FIXTURES / "tiny_gguf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _tiny()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tokenizers")


# -- packaged models against llama.cpp ------------------------------------------------------

@pytest.fixture(scope="module", params=["gemma3_270m", "smollm2_135m"])
def golden(request, cache_dir):
    data = json.loads((FIXTURES / f"tokens_{request.param}.json").read_text(encoding="utf-8"))
    tok = Tokenizer.from_gguf(GGUFFile(resolve_model(data["model"]).path), cache_dir=cache_dir)
    return tok, data


@pytest.mark.slow
def test_encode_matches_llama_cpp(golden):
    tok, data = golden
    assert data["add_special"] is True
    mismatches = [(c["text"], tok.encode(c["text"]), c["ids"]) for c in data["cases"]
                  if tok.encode(c["text"]) != c["ids"]]
    assert not mismatches


@pytest.mark.slow
def test_decode_round_trips(golden):
    tok, data = golden
    for case in data["cases"]:
        assert tok.decode(tok.encode(case["text"], add_special_tokens=False)) == case["text"]
        assert tok.decode(case["ids"], skip_special_tokens=True) == _without_specials(tok, case["text"])


def _without_specials(tok, text):
    for added in tok.hf.backend_tokenizer.get_added_tokens_decoder().values():
        if added.special:
            text = text.replace(added.content, "")
    return text


@pytest.mark.slow
def test_greedy_prompt_ids_match_llama_cpp(golden):
    tok, data = golden
    greedy_file = FIXTURES / f"greedy_{data['model'].replace(':', '_')}.json"
    greedy = json.loads(greedy_file.read_text(encoding="utf-8"))
    for case in greedy["cases"]:
        assert tok.encode(case["prompt"]) == case["prompt_ids"]
        assert tok.decode(case["ids"]) == case["text"]


@pytest.mark.slow
def test_packaged_model_facts(golden):
    tok, data = golden
    if data["model"] == "gemma3:270m":
        assert (tok.family, tok.add_bos, tok.bos_token_id, tok.eos_token_id, tok.vocab_size) == \
            ("gemma", True, 2, 1, 262144)
        assert tok.eos_token_ids == {1, tok.hf.convert_tokens_to_ids("<end_of_turn>")}
        assert tok.template.is_fallback
        prompt = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=True)
        assert prompt == tok.encode("<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n")
        assert prompt[:2] == [2, tok.hf.convert_tokens_to_ids("<start_of_turn>")]  # one BOS, not two
    else:
        assert (tok.family, tok.add_bos, tok.eos_token_id, tok.vocab_size) == ("chatml", False, 2, 49152)
        assert tok.eos_token_ids == {0, 2}  # <|endoftext|>, <|im_end|>
        assert not tok.template.is_fallback and "SmolLM" in tok.chat_template


# -- rules, on a tiny synthetic file -----------------------------------------------------------

def test_tiny_bpe_encode_decode(tmp_path, cache_dir):
    tok = Tokenizer.from_gguf(GGUFFile(tiny.write_tiny_gguf(tmp_path / "t.gguf")), cache_dir=cache_dir)
    vocab = tiny.vocab()
    ids = tok.encode("hello world")
    assert [vocab[i] for i in ids] == ["hello", "Ġwor", "l", "d"]
    assert tok.encode("<|im_start|>hello<|im_end|>") == [1, vocab.index("hello"), 2]
    assert tok.decode(ids) == "hello world"
    assert tok.decode([1, *ids, 2], skip_special_tokens=True) == "hello world"
    assert (tok.add_bos, tok.bos_token_id, tok.eos_token_id, tok.vocab_size) == (False, 1, 0, len(vocab))
    assert tok.eos_token_ids == {0, 2}
    assert tok.hf.encode("hello") == tok.encode("hello")
    with pytest.raises(ValueError, match="token id 9999 is outside the vocabulary of 266"):
        tok.decode([9999])


def test_eot_id_from_metadata_ends_generation(tmp_path, cache_dir):
    path = tiny.write_tiny_gguf(tmp_path / "t.gguf", extra={"tokenizer.ggml.eot_token_id": 5})
    assert Tokenizer.from_gguf(GGUFFile(path), cache_dir=cache_dir).eos_token_ids == {0, 2, 5}


def test_add_bos_flag_and_template(tmp_path, cache_dir):
    template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    path = tiny.write_tiny_gguf(tmp_path / "t.gguf", add_bos=True, chat_template=template)
    tok = Tokenizer.from_gguf(GGUFFile(path), cache_dir=cache_dir)
    assert tok.add_bos
    assert tok.encode("hello")[0] == 1 and tok.encode("hello", add_special_tokens=False)[0] != 1
    assert tok.chat_template == template and not tok.template.is_fallback
    assert tok.apply_chat_template([{"role": "user", "content": "hello"}]) == "user: hello\n"
    assert tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=True) == \
        [1] + tok.encode("user: hello\n", add_special_tokens=False)


def test_fallback_template_when_file_has_none(tmp_path, cache_dir):
    tok = Tokenizer.from_gguf(GGUFFile(tiny.write_tiny_gguf(tmp_path / "t.gguf")), cache_dir=cache_dir)
    assert tok.family == "chatml" and tok.template.is_fallback
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}]) == \
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_default_add_bos_follows_llama_cpp():
    assert tokenizer_mod._default_add_bos("llama", None)        # SentencePiece
    assert tokenizer_mod._default_add_bos("gpt2", "llama-bpe")  # Llama 3
    assert not tokenizer_mod._default_add_bos("gpt2", "qwen2")
    assert not tokenizer_mod._default_add_bos("gpt2", "smollm")


def test_converted_tokenizer_is_cached(tmp_path, monkeypatch):
    path = tiny.write_tiny_gguf(tmp_path / "t.gguf")
    first = Tokenizer.from_gguf(GGUFFile(path), cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache").glob("*/tokenizer.json"))
    assert len(cached) == 1

    def no_conversion(*args):
        raise AssertionError("converted again despite the cache")

    monkeypatch.setattr(tokenizer_mod, "_convert", no_conversion)
    again = Tokenizer.from_gguf(GGUFFile(path), cache_dir=tmp_path / "cache")
    assert again.encode("hello world") == first.encode("hello world")
    # different tokenizer metadata -> different key -> a new conversion
    other = tiny.write_tiny_gguf(tmp_path / "u.gguf", add_bos=True)
    with pytest.raises(AssertionError, match="converted again"):
        Tokenizer.from_gguf(GGUFFile(other), cache_dir=tmp_path / "cache")


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    path = tiny.write_tiny_gguf(tmp_path / "t.gguf")
    Tokenizer.from_gguf(GGUFFile(path), cache_dir=tmp_path / "cache")
    [cached] = (tmp_path / "cache").glob("*/tokenizer.json")
    cached.write_text('{"truncated": ')
    tok = Tokenizer.from_gguf(GGUFFile(path), cache_dir=tmp_path / "cache")
    assert [tiny.vocab()[i] for i in tok.encode("hello")] == ["hello"]
    assert cached.read_text().startswith("{") and len(cached.read_text()) > 1000


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    import gguf
    import numpy as np

    path = tmp_path / "notok.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("x", np.zeros(4, np.float32))
    w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()
    with pytest.raises(GGUFError, match=r"notok\.gguf.*tokenizer\.ggml\.tokens"):
        Tokenizer.from_gguf(GGUFFile(path), cache_dir=tmp_path)


def test_bad_special_token_id_is_a_clear_error(tmp_path):
    path = tiny.write_tiny_gguf(tmp_path / "t.gguf", bos_token_id=4000)
    with pytest.raises(GGUFError, match=r"t\.gguf: tokenizer\.ggml\.bos_token_id = 4000 is not a token id of the "
                                        r"vocabulary of 266 tokens"):
        Tokenizer.from_gguf(GGUFFile(path), cache_dir=tmp_path)


def test_unsupported_tokenizer_model_is_a_clear_error(tmp_path):
    path = tiny.write_tiny_gguf(tmp_path / "t.gguf", tokenizer_model="rwkv")
    with pytest.raises(GGUFError, match=r"t\.gguf.*tokenizer\.ggml\.model='rwkv'"):
        Tokenizer.from_gguf(GGUFFile(path), cache_dir=tmp_path)
