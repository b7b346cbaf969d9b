"""The compiled-kernel cache: memory (per process) and disk (shared).

Disk layout under `alloy.config.get().cache_dir` (env: ALLOY_CACHE_DIR):

    kernels/<key[:2]>/<key>.so     the compiled shared object
    kernels/<key[:2]>/<key>.json   its metadata; written last, so its presence
                                   marks a complete entry

Metadata is a JSON object and must name the entry point's symbol under
"entry" (its C ABI: docs/cpu-abi.md). Files are written to a temporary name
and renamed into place, so readers never see a partial entry. A missing or
corrupt entry reads as a miss. Each .so is dlopened once per process and never
closed. Loading from disk needs neither numpy nor MLIR.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from alloy import config
from alloy.runtime import native

CACHE_FORMAT = 1  # bump when the disk layout or the entry ABI changes
_KEY_RE = re.compile(r"[0-9A-Za-z_\-]{1,128}")
_handles: dict[str, int] = {}  # path -> dlopen handle, process-wide
_fallback_dir: Path | None = None


@dataclass(frozen=True)
class CachedKernel:
    """A loaded kernel: entry-point address, its metadata, and its .so path."""

    fn_addr: int
    metadata: dict = field(hash=False)
    path: Path


def compiler_version() -> str:
    """The compiler version that keys carry (from alloy.__version__)."""
    import alloy

    version = getattr(alloy, "__version__", None)
    if version is None:
        from importlib import metadata

        try:
            version = metadata.version("alloy-kit")
        except metadata.PackageNotFoundError:
            version = "0+unknown"
    return f"alloy-{version}/cache-{CACHE_FORMAT}"


def cache_key(*parts: object) -> str:
    """sha256 hex digest over a canonical form of `parts` and the compiler version.

    Parts may be None, bool, int, float, str, bytes, Path, tuples/lists, dicts,
    numpy dtypes and scalars (or objects whose `__alloy_key__()` returns such).
    """
    text = _canonical((compiler_version(), parts))
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(x: object) -> str:
    if x is None or isinstance(x, (bool, int, float, str)):
        return f"{type(x).__name__}:{x!r}"
    if isinstance(x, (bytes, bytearray)):
        return f"bytes:{bytes(x).hex()}"
    if isinstance(x, Path):
        return f"path:{str(x)!r}"
    if isinstance(x, (tuple, list)):
        return f"{type(x).__name__}[" + ",".join(_canonical(v) for v in x) + "]"
    if isinstance(x, dict):
        items = sorted((_canonical(k), _canonical(v)) for k, v in x.items())
        return "dict{" + ",".join(f"{k}={v}" for k, v in items) + "}"
    if hasattr(x, "__alloy_key__"):
        return f"{type(x).__qualname__}:{_canonical(x.__alloy_key__())}"
    np = sys.modules.get("numpy")  # numpy values exist only if numpy is loaded
    if np is not None and isinstance(x, np.dtype):
        return f"dtype:{x.name}:{x.str}"
    if np is not None and isinstance(x, np.generic):
        return f"np:{x.dtype.name}:{_canonical(x.item())}"
    raise TypeError(f"cache_key: cannot key a value of type {type(x).__qualname__}: {x!r}")


class KernelCache:
    """Memory + disk cache of compiled CPU kernels, keyed by `cache_key()` strings."""

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self._cache_dir = None if cache_dir is None else Path(cache_dir)
        self._memory: dict[str, CachedKernel] = {}

    @property
    def directory(self) -> Path:
        """Where entries live (follows alloy.config unless given at construction)."""
        base = self._cache_dir if self._cache_dir is not None else config.get().cache_dir
        return base / "kernels"

    def get(self, key: str) -> CachedKernel | None:
        """The kernel for `key` from memory or disk, or None on a miss."""
        _check_key(key)
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        so_path, meta_path = self._paths(key)
        try:
            metadata = json.loads(meta_path.read_bytes())
            kernel = _load(so_path, metadata)
        except (OSError, ValueError, TypeError, KeyError):
            return None  # missing or corrupt: the caller recompiles
        self._memory[key] = kernel
        return kernel

    def put(self, key: str, shared_object: bytes, metadata: dict) -> CachedKernel:
        """Stores a compiled .so and its metadata (needs "entry"), then loads it.
        The returned metadata is the JSON round trip of `metadata`.

        If the cache directory cannot be written, the kernel still loads from a
        private temporary directory (with a warning).
        """
        _check_key(key)
        if not isinstance(shared_object, (bytes, bytearray, memoryview)):
            raise TypeError(f"KernelCache.put: shared_object must be bytes, got {type(shared_object).__name__}")
        _check_metadata(metadata)
        meta_bytes = json.dumps(metadata, sort_keys=True).encode()
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        so_path, meta_path = self._paths(key)
        try:
            _write_atomic(so_path, shared_object)
            _write_atomic(meta_path, meta_bytes)
        except OSError as exc:
            warnings.warn(f"alloy kernel cache: cannot write {so_path.parent} ({exc}); not caching on disk")
            so_path = _private_dir() / so_path.name
            _write_atomic(so_path, shared_object)
        if str(so_path) in _handles:
            # An older file at this path is loaded (it failed to give a kernel):
            # dlopen would hand that one back, so load a private copy.
            so_path = _private_dir() / so_path.name
            _write_atomic(so_path, shared_object)
        # the metadata as a later get() reads it back (tuples become lists)
        kernel = _load(so_path, json.loads(meta_bytes))
        self._memory[key] = kernel
        return kernel

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.directory / key[:2]
        return folder / f"{key}.so", folder / f"{key}.json"


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        raise ValueError(f"kernel cache key must be 1-128 characters of [0-9A-Za-z_-], got {key!r}")


def _check_metadata(metadata: dict) -> None:
    if not isinstance(metadata, dict):
        raise TypeError(f"KernelCache.put: metadata must be a dict, got {type(metadata).__name__}")
    entry = metadata.get("entry")
    if not isinstance(entry, str) or not entry:
        raise ValueError(f"KernelCache.put: metadata['entry'] must name the entry symbol, got {entry!r}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"KernelCache.put: metadata is not JSON-serializable: {exc}") from None


def _load(so_path: Path, metadata: dict) -> CachedKernel:
    """dlopen (once per path per process) and find the entry symbol."""
    if not isinstance(metadata, dict) or not isinstance(metadata.get("entry"), str):
        raise ValueError(f"{so_path}: metadata has no 'entry' symbol name")
    path = str(so_path)
    handle = _handles.get(path)
    if handle is None:
        handle = native.dlopen(path)
        _handles[path] = handle
    return CachedKernel(native.dlsym(handle, metadata["entry"]), metadata, so_path)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _private_dir() -> Path:
    global _fallback_dir
    if _fallback_dir is None:
        import atexit
        import shutil
        import tempfile

        _fallback_dir = Path(tempfile.mkdtemp(prefix="alloy-kernels-"))
        atexit.register(shutil.rmtree, _fallback_dir, ignore_errors=True)
    return _fallback_dir
