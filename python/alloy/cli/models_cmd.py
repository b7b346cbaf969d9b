"""``alloy list`` and ``alloy show``: the local models and what is inside one.

Models are found as :mod:`alloy.serve.gguf.resolve` describes (paths, the Ollama
store, the Hugging Face cache, packaged models); ``$OLLAMA_MODELS``,
``$HF_HUB_CACHE`` and ``$HF_HOME`` move the default places.
"""
from __future__ import annotations

import collections
import pathlib

import click

__all__ = ["list_cmd", "show_cmd", "describe"]


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def _human_count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _file_type_name(file_type) -> str | None:
    from gguf import LlamaFileType

    if file_type is None:
        return None
    try:
        return LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return f"type {file_type}"


def describe(path: pathlib.Path) -> dict[str, object]:
    """The facts ``alloy show`` prints about a GGUF file, as a dict (raises ``GGUFError``)."""
    from alloy.serve.gguf.chat_template import detect_family
    from alloy.serve.gguf.reader import GGUFFile

    f = GGUFFile(path)
    tensor_types = collections.Counter(t.qtype.name for t in f.tensors.values())
    tokens = f.get("tokenizer.ggml.tokens") or []
    template = f.get("tokenizer.chat_template")
    family = detect_family(f.arch, frozenset(t for t in tokens if t.startswith("<")))
    heads, kv_heads = f.arch_get("attention.head_count"), f.arch_get("attention.head_count_kv")
    return {
        "architecture": f.arch,
        "name": f.get("general.name"),
        "parameters": sum(t.n_elements for t in f.tensors.values()),
        "file type": _file_type_name(f.get("general.file_type")),
        "tensor types": dict(tensor_types.most_common()),
        "context length": f.arch_get("context_length"),
        "embedding length": f.arch_get("embedding_length"),
        "layers": f.arch_get("block_count"),
        "heads": heads if kv_heads in (None, heads) else f"{heads} (KV {kv_heads})",
        "vocab size": len(tokens) or f.arch_get("vocab_size"),
        "tokenizer": f"{f.get('tokenizer.ggml.model')} (pre {f.get('tokenizer.ggml.pre', 'default')})",
        "chat template": "in file" if isinstance(template, str) and template.strip()
        else f"none in file; fallback {family!r}",
        "family": family,
        "size": path.stat().st_size,
    }


def _quant_of(path: pathlib.Path) -> str:
    from alloy.serve.gguf.errors import GGUFError
    from alloy.serve.gguf.reader import GGUFFile
    from alloy.serve.gguf.resolve import quant_from_filename

    if path.is_file():
        try:
            name = _file_type_name(GGUFFile(path).get("general.file_type"))
            if name:
                return name
        except GGUFError:
            pass
    return quant_from_filename(path.name) or "?"


@click.command("list")
def list_cmd() -> None:
    """List the models found locally (Ollama, Hugging Face cache, packaged)."""
    from rich.console import Console
    from rich.table import Table

    from alloy.serve.gguf.resolve import list_models

    refs = list_models()
    table = Table("NAME", "SOURCE", "SIZE", "QUANT", box=None, pad_edge=False)
    table.add_column("PATH", overflow="fold")
    for ref in refs:
        size = _human_bytes(ref.path.stat().st_size) if ref.path.is_file() else "not assembled yet"
        table.add_row(ref.name, ref.source, size, _quant_of(ref.path), str(ref.path))
    console = Console()
    if refs:
        console.print(table)
    else:
        console.print("no models found (looked in the Ollama store, the Hugging Face cache and packaged models)")


@click.command("show")
@click.argument("model")
@click.option("--template", "print_template", is_flag=True, help="Also print the chat template used.")
def show_cmd(model: str, print_template: bool) -> None:
    """Show what is inside MODEL (a path, an Ollama tag, org/repo[:QUANT] or a packaged name)."""
    from rich.console import Console
    from rich.table import Table

    from alloy.serve.gguf.chat_template import fallback_source
    from alloy.serve.gguf.errors import GGUFError
    from alloy.serve.gguf.reader import GGUFFile
    from alloy.serve.gguf.resolve import ModelNotFoundError, resolve_model

    try:
        ref = resolve_model(model)
        facts = describe(ref.path)
    except (ModelNotFoundError, GGUFError) as e:
        raise click.ClickException(str(e)) from None
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("model", f"{ref.name} ({ref.source})")
    table.add_row("path", str(ref.path))
    for key, value in facts.items():
        if key == "parameters":
            value = f"{_human_count(value)} ({value:,})"
        elif key == "size":
            value = _human_bytes(value)
        elif key == "tensor types":
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        table.add_row(key, "-" if value is None else str(value))
    console = Console()
    console.print(table)
    if print_template:
        source = GGUFFile(ref.path).get("tokenizer.chat_template") or fallback_source(str(facts["family"]))
        console.print(source, markup=False, highlight=False)
