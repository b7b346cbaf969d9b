"""Model resolution against fake Ollama stores and Hugging Face caches holding tiny real GGUF files."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib

import pytest

from alloy.serve.gguf.reader import GGUFFile
from alloy.serve.gguf.resolve import (AmbiguousModelError, ModelNotFoundError, ModelRef, SearchPaths, list_models,
                                      quant_from_filename, resolve_model)

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _tiny():
    spec = importlib.util.spec_from_file_location("tiny_gguf", FIXTURES / "tiny_gguf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _tiny()


def make_ollama(root: pathlib.Path, name: str, tag: str, *, host="registry.ollama.ai", namespace="library",
                media_type="application/vnd.ollama.image.model") -> pathlib.Path:
    """An Ollama store entry as `ollama pull` lays it out; returns the model blob."""
    src = tiny.write_tiny_gguf(root / "src" / f"{name}-{tag}.gguf")
    data = src.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    blob = root / "blobs" / f"sha256-{digest}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    config = root / "blobs" / ("sha256-" + "0" * 64)
    config.write_text("{}")
    manifest = root / "manifests" / host / namespace / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + "0" * 64},
        "layers": [{"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)},
                   {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64}]}))
    return blob


def make_hf(root: pathlib.Path, repo: str, files: list[str], rev: str = "abc123",
            main: bool = True) -> list[pathlib.Path]:
    org, name = repo.split("/")
    repo_dir = root / f"models--{org}--{name}"
    snap = repo_dir / "snapshots" / rev
    paths = [tiny.write_tiny_gguf(snap / f) for f in files]
    if main:
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(rev)
    return paths


@pytest.fixture
def search(tmp_path):
    return SearchPaths(ollama=tmp_path / "ollama", huggingface=tmp_path / "hub")


# -- Ollama ---------------------------------------------------------------------------------------------

def test_ollama_tag(search):
    blob = make_ollama(search.ollama, "qwen3", "0.6b")
    ref = resolve_model("qwen3:0.6b", search)
    assert ref == ModelRef("qwen3:0.6b", blob, "ollama")
    assert GGUFFile(ref.path).arch == "llama"


def test_ollama_default_tag_and_namespaces(search):
    latest = make_ollama(search.ollama, "gemma3", "latest")
    user = make_ollama(search.ollama, "mymodel", "v1", namespace="someone")
    hf = make_ollama(search.ollama, "repo", "Q4_K_M", host="hf.co", namespace="org")
    assert resolve_model("gemma3", search).path == latest
    assert resolve_model("someone/mymodel:v1", search) == ModelRef("someone/mymodel:v1", user, "ollama")
    assert resolve_model("hf.co/org/repo:Q4_K_M", search) == ModelRef("hf.co/org/repo:Q4_K_M", hf, "ollama")


def test_ollama_missing_blob_is_reported(search):
    blob = make_ollama(search.ollama, "qwen3", "0.6b")
    blob.unlink()
    with pytest.raises(ModelNotFoundError, match=r"manifests/registry\.ollama\.ai/library/qwen3/0\.6b: model blob .*"
                                                 r"sha256-[0-9a-f]{64} is missing"):
        resolve_model("qwen3:0.6b", search)


def test_ollama_manifest_without_model_layer(search):
    make_ollama(search.ollama, "qwen3", "0.6b", media_type="application/vnd.ollama.image.adapter")
    with pytest.raises(ModelNotFoundError, match="no layer of media type application/vnd.ollama.image.model"):
        resolve_model("qwen3:0.6b", search)


# -- Hugging Face cache ------------------------------------------------------------------------------

def test_hf_repo_with_one_file(search):
    [path] = make_hf(search.huggingface, "org/Tiny-GGUF", ["tiny-Q8_0.gguf"])
    assert resolve_model("org/Tiny-GGUF", search) == ModelRef("org/Tiny-GGUF:Q8_0", path, "huggingface")


def test_hf_quant_selection(search):
    q4, q8, _ = make_hf(search.huggingface, "org/Tiny-GGUF",
                        ["Tiny-Q4_K_M.gguf", "Tiny-Q8_0.gguf", "mmproj-Tiny-F16.gguf"])
    assert resolve_model("org/Tiny-GGUF:Q8_0", search).path == q8
    assert resolve_model("org/Tiny-GGUF:q4_k_m", search).path == q4
    assert resolve_model("org/Tiny-GGUF:Tiny-Q8_0.gguf", search).path == q8
    assert resolve_model("org/Tiny-GGUF", search).path == q4  # Q4_K_M is the default among several


def test_hf_ambiguous_without_default(search):
    make_hf(search.huggingface, "org/Tiny-GGUF", ["Tiny-Q8_0.gguf", "Tiny-Q6_K.gguf"])
    with pytest.raises(AmbiguousModelError, match=r"(?s)'org/Tiny-GGUF' is ambiguous.*Q6_K\.gguf.*Q8_0\.gguf"):
        resolve_model("org/Tiny-GGUF", search)


def test_hf_same_quant_twice_is_ambiguous(search):
    make_hf(search.huggingface, "org/Tiny-GGUF", ["a/Tiny-Q8_0.gguf", "b/Tiny-Q8_0.gguf"])
    with pytest.raises(AmbiguousModelError, match="2 files match"):
        resolve_model("org/Tiny-GGUF:Q8_0", search)


def test_hf_missing_quant_lists_available(search):
    make_hf(search.huggingface, "org/Tiny-GGUF", ["Tiny-Q8_0.gguf"])
    with pytest.raises(ModelNotFoundError, match=r"no file for 'Q2_K' \(available: Q8_0\)"):
        resolve_model("org/Tiny-GGUF:Q2_K", search)


def test_hf_snapshot_from_refs_main(search):
    make_hf(search.huggingface, "org/Tiny-GGUF", ["Tiny-Q8_0.gguf"], rev="old")
    [new] = make_hf(search.huggingface, "org/Tiny-GGUF", ["Tiny-Q4_0.gguf"], rev="new")
    (search.huggingface / "models--org--Tiny-GGUF" / "refs" / "main").write_text("new\n")
    assert resolve_model("org/Tiny-GGUF", search).path == new


def test_ollama_wins_over_hf_for_the_same_name(search):
    blob = make_ollama(search.ollama, "Tiny-GGUF", "Q8_0", namespace="org")
    make_hf(search.huggingface, "org/Tiny-GGUF", ["Tiny-Q8_0.gguf"])
    assert resolve_model("org/Tiny-GGUF:Q8_0", search).path == blob


# -- paths, packaged models, errors -----------------------------------------------------------------------

def test_path(tmp_path, search):
    path = tiny.write_tiny_gguf(tmp_path / "m.gguf")
    assert resolve_model(str(path), search) == ModelRef("m", path, "path")


def test_missing_path_is_an_error(tmp_path, search):
    with pytest.raises(ModelNotFoundError, match=r"file .*nope\.gguf: no such file"):
        resolve_model(str(tmp_path / "nope.gguf"), search)


@pytest.mark.slow
def test_packaged_smollm2_resolves():
    none = SearchPaths(ollama=None, huggingface=None)
    smol = resolve_model("smollm2:135m", none)
    assert smol.source == "package" and smol.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and smol.path.is_file()


@pytest.mark.slow
def test_packaged_gemma_resolves():
    ref = resolve_model("gemma3:270m", SearchPaths(ollama=None, huggingface=None))
    assert ref.source == "package" and GGUFFile(ref.path).arch == "gemma3"


def test_not_found_lists_every_place(search):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("org/nothing:Q4_K_M", search)
    msg = str(info.value)
    assert "model 'org/nothing:Q4_K_M' not found; looked in:" in msg
    assert str(search.ollama / "manifests" / "registry.ollama.ai" / "org" / "nothing" / "Q4_K_M") + ": not found" in msg
    assert str(search.huggingface / "models--org--nothing") + ": not found" in msg
    assert "packaged models: gemma3:270m, smollm2:135m" in msg
    assert len(info.value.searched) == 3


def test_not_found_without_search_dirs():
    with pytest.raises(ModelNotFoundError, match=r"(?s)Ollama: not searched.*Hugging Face cache: not searched"):
        resolve_model("qwen3:0.6b", SearchPaths(ollama=None, huggingface=None))


@pytest.mark.parametrize("bad", ["", "  ", "../../etc/passwd:x", "a/b/c/d:e"])
def test_bad_references(bad, search):
    with pytest.raises(ModelNotFoundError):
        resolve_model(bad, search)


def test_default_search_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "o"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "h"))
    assert SearchPaths.default() == SearchPaths(tmp_path / "o", tmp_path / "h")
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert SearchPaths.default().huggingface == tmp_path / "home" / "hub"
    monkeypatch.delenv("OLLAMA_MODELS")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert SearchPaths.default().ollama == tmp_path / ".ollama" / "models"


def test_list_models(search):
    blob = make_ollama(search.ollama, "qwen3", "0.6b")
    q4, q8 = make_hf(search.huggingface, "org/Tiny-GGUF", ["Tiny-Q4_K_M.gguf", "Tiny-Q8_0.gguf"])
    refs = list_models(search)
    assert refs[:3] == [ModelRef("qwen3:0.6b", blob, "ollama"), ModelRef("org/Tiny-GGUF:Q4_K_M", q4, "huggingface"),
                        ModelRef("org/Tiny-GGUF:Q8_0", q8, "huggingface")]
    assert {r.name for r in refs[3:]} <= {"gemma3:270m", "smollm2:135m"}
    assert all(r.source == "package" for r in refs[3:])
    for ref in refs[:3]:  # every listed name resolves back to the same file
        assert resolve_model(ref.name, search) == ref


@pytest.mark.parametrize("name,quant", [
    ("Llama-3.2-3B-Instruct-Q4_K_M.gguf", "Q4_K_M"), ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
    ("gemma-3-270m-q4_k_m.gguf", "Q4_K_M"), ("Qwen3-0.6B-IQ4_XS.gguf", "IQ4_XS"), ("model-f16.gguf", "F16"),
    ("model-BF16-00001-of-00002.gguf", "BF16"), ("Qwen3-0.6B.gguf", None), ("UD-Q4_K_XL.gguf", "Q4_K_XL"),
])
def test_quant_from_filename(name, quant):
    assert quant_from_filename(name) == quant
