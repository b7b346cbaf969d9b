"""Tokenizers built from GGUF metadata with transformers' GGUF conversion.

transformers turns the ``tokenizer.ggml.*`` arrays into a ``tokenizers``
pipeline (byte-level BPE for ``gpt2`` files -- GPT-2, Llama 3, Qwen, SmolLM --
and SentencePiece-style BPE for ``llama`` files -- Llama 2, Gemma). That
conversion takes seconds for a 262k vocabulary, so the result is cached as a
``tokenizer.json`` under ``<cache_dir>/<key>/``, the key being a hash of
every metadata field that shapes the tokenizer (and the transformers version).

For BPE pre-tokenizers that conversion leaves at GPT-2's default but llama.cpp
splits differently (``smollm``: digits first), llama.cpp's split regexes are
installed instead, which is also what the models' own ``tokenizer.json`` does.

BOS/EOS follow llama.cpp: ``tokenizer.ggml.add_bos_token`` /
``add_eos_token`` when present, else the vocabulary type's default (BOS for
SentencePiece and for the Llama-3-style BPE pre-tokenizers, nothing for other
BPE). They are written into the tokenizer's post-processor, so ``hf`` and
:meth:`Tokenizer.encode` agree. End-of-generation ids follow llama.cpp's list
of end-of-turn token names plus the EOS/EOT/EOM ids from the metadata.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .chat_template import ChatTemplate, detect_family
from .errors import GGUFError

if TYPE_CHECKING:
    import transformers

    from .reader import GGUFFile

__all__ = ["Tokenizer", "default_cache_dir", "EOG_TOKEN_NAMES"]

log = logging.getLogger(__name__)
_BUILD_ERRORS = (ValueError, TypeError, KeyError, IndexError, RuntimeError, UnicodeError, OSError)
"""What converting GGUF tokenizer metadata and loading the result raise (the tokenizers library's own
errors are ValueError/TypeError/RuntimeError or, for a damaged file, a bare Exception caught earlier)."""

CACHE_FORMAT = 2
# Token texts llama.cpp (0c1e570, llama-vocab.cpp) treats as end of generation.
EOG_TOKEN_NAMES = frozenset({
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>", "<EOT>", "<|end_of_text|>", "<end_of_utterance>",
})
# BPE pre-tokenizers for which llama.cpp adds BOS by default.
_BOS_BPE_PRE = frozenset({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                          "lfm2", "jina-v5-nano", "tekken", "chameleon"})
_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
# BPE pre-tokenizers transformers' conversion does not reproduce: llama.cpp's regex splits, applied in order.
_PRE_SPLITS = {pre: (r"\p{N}", _GPT2_SPLIT) for pre in ("smollm", "codeshell", "exaone", "minerva-7b", "mellum2")}
_KEYS = {  # GGUF key -> name in transformers' tokenizer dict
    "tokenizer.ggml.model": "tokenizer_type",
    "tokenizer.ggml.pre": "pre_tokenizer_type",
    "tokenizer.ggml.tokens": "tokens",
    "tokenizer.ggml.scores": "scores",
    "tokenizer.ggml.token_type": "token_type",
    "tokenizer.ggml.merges": "merges",
    "tokenizer.ggml.precompiled_charsmap": "precompiled_charsmap",
    "tokenizer.ggml.bos_token_id": "bos_token_id",
    "tokenizer.ggml.eos_token_id": "eos_token_id",
    "tokenizer.ggml.unknown_token_id": "unk_token_id",
    "tokenizer.ggml.padding_token_id": "pad_token_id",
    "tokenizer.ggml.add_space_prefix": "add_prefix_space",
}


def default_cache_dir() -> pathlib.Path:
    return pathlib.Path.home() / ".cache" / "alloy" / "tokenizers"


class Tokenizer:
    """Encode/decode and chat-template rendering for one GGUF model."""

    bos_token_id: int | None
    eos_token_id: int | None
    eos_token_ids: frozenset[int]
    vocab_size: int
    add_bos: bool
    add_eos: bool
    hf: "transformers.PreTrainedTokenizerFast"
    chat_template: str
    template: ChatTemplate
    family: str

    @classmethod
    def from_gguf(cls, gguf_file: "GGUFFile", cache_dir: pathlib.Path | None = None) -> "Tokenizer":
        path = getattr(gguf_file, "path", "<gguf>")
        meta = {name: gguf_file.get(key) for key, name in _KEYS.items() if gguf_file.get(key) is not None}
        tokens = meta.get("tokens")
        if not isinstance(tokens, list) or not tokens:
            raise GGUFError("no tokenizer: metadata key 'tokenizer.ggml.tokens' is missing or empty", path=path)
        model = meta.get("tokenizer_type")
        if model is None:
            raise GGUFError("no tokenizer: metadata key 'tokenizer.ggml.model' is missing", path=path)
        n = len(tokens)
        for key in ("bos_token_id", "eos_token_id", "unk_token_id", "pad_token_id"):
            if key in meta and not (isinstance(meta[key], int) and 0 <= meta[key] < n):
                raise GGUFError(f"tokenizer.ggml.{key.replace('unk_', 'unknown_').replace('pad_', 'padding_')} = "
                                f"{meta[key]!r} is not a token id of the vocabulary of {n} tokens", path=path)

        self = cls.__new__(cls)
        self.vocab_size = n
        self.bos_token_id = meta.get("bos_token_id")
        self.eos_token_id = meta.get("eos_token_id")
        add_bos = gguf_file.get("tokenizer.ggml.add_bos_token")
        add_eos = gguf_file.get("tokenizer.ggml.add_eos_token")
        self.add_bos = bool(add_bos) if add_bos is not None else _default_add_bos(model, meta.get("pre_tokenizer_type"))
        self.add_eos = bool(add_eos) if add_eos is not None else model == "t5"
        if self.add_bos and self.bos_token_id is None:
            raise GGUFError("the tokenizer adds BOS but 'tokenizer.ggml.bos_token_id' is missing", path=path)
        if self.add_eos and self.eos_token_id is None:
            raise GGUFError("the tokenizer adds EOS but 'tokenizer.ggml.eos_token_id' is missing", path=path)

        eog = {i for i in (self.eos_token_id, gguf_file.get("tokenizer.ggml.eot_token_id"),
                           gguf_file.get("tokenizer.ggml.eom_token_id")) if i is not None and 0 <= i < n}
        eog.update(i for i, t in enumerate(tokens) if t in EOG_TOKEN_NAMES)
        self.eos_token_ids = frozenset(eog)

        cache_dir = pathlib.Path(cache_dir or default_cache_dir()).expanduser()
        try:
            json_path = _converted(gguf_file.arch, meta, self, path, cache_dir)
            try:
                self.hf = _wrap(json_path, tokens, meta)
            except Exception as e:  # tokenizers raises a bare Exception on a damaged file
                log.warning("damaged cached tokenizer %s (%s); converting again", json_path, e)
                json_path.unlink(missing_ok=True)
                self.hf = _wrap(_converted(gguf_file.arch, meta, self, path, cache_dir), tokens, meta)
        except _BUILD_ERRORS as e:  # the vocabulary, merges or scores the metadata holds make no tokenizer
            if isinstance(e, GGUFError):
                raise
            raise GGUFError(f"cannot build the tokenizer from its metadata ({type(e).__name__}: {e})",
                            path=path) from e
        self._backend = self.hf.backend_tokenizer

        vocab = frozenset(t for t in tokens if t.startswith("<"))
        self.family = detect_family(gguf_file.arch, vocab)
        specials = {name: tokens[meta[f"{name}_id"]] if f"{name}_id" in meta else None
                    for name in ("bos_token", "eos_token", "unk_token", "pad_token")}
        source = gguf_file.get("tokenizer.chat_template")
        if isinstance(source, str) and source.strip():
            self.template = ChatTemplate(source, origin=f"{path} (tokenizer.chat_template)", special_tokens=specials)
        else:
            self.template = ChatTemplate.fallback(self.family, specials)
        self.chat_template = self.template.source
        self.hf.chat_template = self.chat_template
        self._bos_text = specials["bos_token"]
        return self

    # -- text <-> ids -------------------------------------------------------------
    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; special-token texts (``<|im_end|>``) become their ids."""
        if not isinstance(text, str):
            raise TypeError(f"Tokenizer.encode expects str, got {type(text).__name__}")
        return self._backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id {bad[0]} is outside the vocabulary of {self.vocab_size} tokens")
        return self._backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: list[dict], tools: list[dict] | None = None,
                            add_generation_prompt: bool = True, tokenize: bool = False,
                            **template_kwargs) -> str | list[int]:
        """The prompt for ``messages``; ``tokenize=True`` gives ids as llama.cpp's server would.

        As llama.cpp does, a BOS the template writes itself is not added a second time.
        """
        text = self.template.render(messages, tools=tools, add_generation_prompt=add_generation_prompt,
                                    **template_kwargs)
        if not tokenize:
            return text
        if self.add_bos and self._bos_text and text.startswith(self._bos_text):
            text = text[len(self._bos_text):]
        return self.encode(text, add_special_tokens=True)

    def __repr__(self) -> str:
        return (f"Tokenizer(family={self.family!r}, vocab_size={self.vocab_size}, add_bos={self.add_bos}, "
                f"template={'fallback' if self.template.is_fallback else 'file'})")


def _default_add_bos(model: str, pre: str | None) -> bool:
    """llama.cpp's default when the file has no ``tokenizer.ggml.add_bos_token``."""
    if model == "llama":
        return True
    return model == "gpt2" and pre in _BOS_BPE_PRE


def _cache_key(arch: str, meta: dict, tok: Tokenizer) -> str:
    import transformers

    h = hashlib.sha256()
    head = {k: v for k, v in meta.items() if not isinstance(v, list)}
    head.update(arch=arch, add_bos=tok.add_bos, add_eos=tok.add_eos, format=CACHE_FORMAT,
                transformers=transformers.__version__)
    h.update(json.dumps(head, sort_keys=True).encode())
    for name in ("tokens", "merges", "token_type", "scores", "precompiled_charsmap"):
        values = meta.get(name)
        if values is not None:
            h.update(f"\0{name}:{len(values)}\0".encode())
            h.update("\0".join(map(str, values)).encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


def _converted(arch: str, meta: dict, tok: Tokenizer, path, cache_dir: pathlib.Path) -> pathlib.Path:
    """The cached ``tokenizer.json`` for this metadata, converting and storing it on a miss."""
    target = cache_dir / _cache_key(arch, meta, tok) / "tokenizer.json"
    if target.is_file():
        return target
    backend = _convert(arch, meta, tok, path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        os.close(fd)
        backend.save(tmp)
        os.replace(tmp, target)
        return target
    except OSError as e:
        log.warning("cannot cache the tokenizer under %s (%s); using a temporary copy", cache_dir, e)
        tmpdir = pathlib.Path(tempfile.mkdtemp(prefix="alloy-tokenizer-"))
        backend.save(str(tmpdir / "tokenizer.json"))
        return tmpdir / "tokenizer.json"


def _convert(arch: str, meta: dict, tok: Tokenizer, path):
    from tokenizers import Regex, pre_tokenizers, processors
    from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

    try:
        backend, _ = convert_gguf_tokenizer(arch, dict(meta))
    except (ValueError, KeyError, TypeError) as e:
        raise GGUFError(f"cannot build a tokenizer for tokenizer.ggml.model={meta['tokenizer_type']!r} "
                        f"(architecture {arch!r}): {e}", path=path) from e
    splits = _PRE_SPLITS.get(meta.get("pre_tokenizer_type")) if meta["tokenizer_type"] == "gpt2" else None
    if splits:
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(s), behavior="isolated") for s in splits]
            + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokens = meta["tokens"]
    single, pair, special = ["$A:0"], ["$A:0", "$B:1"], []
    if tok.add_bos:
        bos = tokens[tok.bos_token_id]
        single.insert(0, bos), pair.insert(0, bos), special.append((bos, tok.bos_token_id))
    if tok.add_eos:
        eos = tokens[tok.eos_token_id]
        single.append(eos), pair.insert(2, eos), pair.append(eos), special.append((eos, tok.eos_token_id))
    backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)
    return backend


def _wrap(json_path: pathlib.Path, tokens: list[str], meta: dict):
    from transformers import PreTrainedTokenizerFast

    specials = {name: tokens[meta[f"{name}_id"]] for name in ("bos_token", "eos_token", "unk_token", "pad_token")
                if f"{name}_id" in meta}
    return PreTrainedTokenizerFast(tokenizer_file=str(json_path), **specials)
