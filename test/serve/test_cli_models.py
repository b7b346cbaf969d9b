"""`alloy list` and `alloy show` through click's CliRunner."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib

import pytest
from click.testing import CliRunner

from alloy.cli.main import COMMANDS, alloy

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def _tiny():
    spec = importlib.util.spec_from_file_location("tiny_gguf", FIXTURES / "tiny_gguf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _tiny()


@pytest.fixture
def run(tmp_path):
    env = {"OLLAMA_MODELS": str(tmp_path / "ollama"), "HF_HUB_CACHE": str(tmp_path / "hub"), "COLUMNS": "250"}

    def invoke(*args):
        return CliRunner().invoke(alloy, list(args), env=env)
    return invoke


def test_help_lists_registered_commands(run):
    result = run("--help")
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


def test_show_tiny_file(tmp_path, run):
    path = tiny.write_tiny_gguf(tmp_path / "tiny.gguf")
    result = run("show", str(path))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    def fact(key):
        [value] = [line[len(key):].strip() for line in lines if line.startswith(key + " ")]
        return value

    n_vocab = len(tiny.vocab())
    assert fact("architecture") == "llama"
    assert fact("parameters") == f"2.1K ({n_vocab * 8 + 8:,})"
    assert fact("file type") == "F32"
    assert fact("tensor types") == "F32 2"
    assert (fact("context length"), fact("embedding length")) == ("256", "8")
    assert fact("layers") == "2"
    assert fact("heads") == "2 (KV 1)"
    assert fact("vocab size") == str(n_vocab)
    assert fact("chat template") == "none in file; fallback 'chatml'"


def test_show_template_in_file(tmp_path, run):
    path = tiny.write_tiny_gguf(tmp_path / "tiny.gguf", chat_template="{{ messages[0]['content'] }}")
    result = run("show", "--template", str(path))
    assert result.exit_code == 0, result.output
    assert "in file" in result.output
    assert result.output.rstrip().endswith("{{ messages[0]['content'] }}")


def test_show_unknown_model_is_a_clean_error(run):
    result = run("show", "nosuchmodel:1b")
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "Error: model 'nosuchmodel:1b' not found; looked in:" in result.output
    assert "nosuchmodel/1b: not found" in result.output
    assert "Traceback" not in result.output


def test_show_corrupt_file_is_a_clean_error(tmp_path, run):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 8)
    result = run("show", str(bad))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Error: " in result.output and "bad.gguf" in result.output


def test_list(tmp_path, run):
    src = tiny.write_tiny_gguf(tmp_path / "src.gguf", file_type=7)  # MOSTLY_Q8_0 stated in the metadata
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    (tmp_path / "ollama" / "blobs").mkdir(parents=True)
    src.rename(tmp_path / "ollama" / "blobs" / f"sha256-{digest}")
    manifest = tmp_path / "ollama" / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "latest"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"layers": [{"mediaType": "application/vnd.ollama.image.model",
                                                "digest": f"sha256:{digest}"}]}))
    tiny.write_tiny_gguf(tmp_path / "hub" / "models--org--Tiny-GGUF" / "snapshots" / "r1" / "Tiny-Q4_K_M.gguf")

    result = run("list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:] if line.strip()}
    assert rows["tiny:latest"][1:2] == ["ollama"] and rows["tiny:latest"][4] == "Q8_0"
    assert rows["org/Tiny-GGUF:Q4_K_M"][1] == "huggingface"
    assert rows["org/Tiny-GGUF:Q4_K_M"][4] == "F32"  # the file's own general.file_type wins over its name


@pytest.mark.slow
def test_show_packaged_gemma(run):
    result = run("show", "gemma3:270m")
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in ("gemma3", "268.1M (268,098,176)", "Q4_K_M", "F32 109, Q5_0 81, Q4_K 27, Q8_0 10, Q6_K 9",
                     "32768", "640", "4 (KV 1)", "262144", "none in file; fallback 'gemma'"):
        assert expected in out
