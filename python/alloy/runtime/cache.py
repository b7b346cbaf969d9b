"""The compiled-kernel cache: memory (per process) and disk (shared), and the parts of cache keys
that describe the machine and the compiler's own sources.

Disk layout under `alloy.config.get().cache_dir` (env: ALLOY_CACHE_DIR):

    kernels/<key[:2]>/<key>.so     the compiled shared object
    kernels/<key[:2]>/<key>.json   its metadata; written last, so its presence
                                   marks a complete entry
    fingerprints/<stat digest>     memo of `sources_digest`: the content digest of
                                   a set of source files, named by their stat data

Metadata is a JSON object and must name the entry point's symbol under
"entry" (its C ABI: docs/cpu-abi.md). Files are written to a temporary name
and renamed into place, so readers never see a partial entry. A missing or
corrupt entry reads as a miss. Each .so is dlopened once per process and never
closed. Loading from disk needs neither numpy nor MLIR, and a hit imports
little: sha256 comes from the interpreter's builtin module, not hashlib (whose
OpenSSL load costs milliseconds), and the metadata is read through Python's
parser (`_json_loads`), not the json module (whose import costs ~1 ms).
"""

from __future__ import annotations

import ast
import os
import sys
import warnings
from pathlib import Path

from alloy import config
from alloy.runtime import native

try:  # the interpreter's builtin sha256 (named _sha2 from Python 3.12); hashlib also loads OpenSSL
    if sys.version_info >= (3, 12):
        from _sha2 import sha256
    else:
        from _sha256 import sha256
except ImportError:
    from hashlib import sha256

CACHE_FORMAT = 1  # bump when the disk layout or the entry ABI changes
_KEY_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-")
_handles: dict[str, int] = {}  # path -> dlopen handle, process-wide
_fallback_dir: Path | None = None
_host_cpu: str | None = None


class CachedKernel:
    """A loaded kernel: entry-point address, its metadata, and its .so path."""

    __slots__ = ("fn_addr", "metadata", "path")

    def __init__(self, fn_addr: int, metadata: dict, path: Path):
        self.fn_addr = fn_addr
        self.metadata = metadata
        self.path = path

    def __repr__(self):
        return f"CachedKernel(fn_addr={self.fn_addr:#x}, path={str(self.path)!r})"


def compiler_version() -> str:
    """The compiler version that keys carry (alloy.version)."""
    from alloy.version import __version__

    return f"alloy-{__version__}/cache-{CACHE_FORMAT}"


def cache_key(*parts: object) -> str:
    """sha256 hex digest over a canonical form of `parts` and the compiler version.

    Parts may be None, bool, int, float, str, bytes, Path, tuples/lists, dicts,
    numpy dtypes and scalars (or objects whose `__alloy_key__()` returns such).
    """
    return digest((compiler_version(), parts))


def digest(value: object) -> str:
    """sha256 hex digest of the canonical form of `value` (the values `cache_key` takes)."""
    return sha256(_canonical(value).encode()).hexdigest()


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


# ------------------------------------------------------------------ key parts
_CPUINFO_FIELDS = frozenset({"vendor_id", "cpu family", "model", "model name", "flags",  # x86
                             "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "Features",  # Arm
                             "isa", "uarch", "mmu", "cpu"})  # RISC-V, POWER


def host_cpu() -> str:
    """What code compiled for this machine's CPU (LLVM's host CPU name and features) depends on,
    read without LLVM: on Linux the first processor's identity and feature flags from
    /proc/cpuinfo, on macOS the CPU brand and feature strings from sysctl; always the machine
    architecture. Part of CPU kernels' cache keys, so that a cache directory shared between
    machines never hands code to a CPU it was not compiled for."""
    global _host_cpu
    if _host_cpu is None:
        import platform

        parts = [platform.machine()]
        if sys.platform.startswith("linux"):
            parts += _cpuinfo()
        elif sys.platform == "darwin":
            parts += _sysctl("machdep.cpu.brand_string", "machdep.cpu.features", "machdep.cpu.leaf7_features")
        else:
            parts.append(platform.processor())
        _host_cpu = "\n".join(parts)
    return _host_cpu


def _cpuinfo() -> list[str]:
    """The identity and flag lines of the first processor in /proc/cpuinfo."""
    out = []
    try:
        with open("/proc/cpuinfo", "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    if out:
                        break  # the end of the first processor's block
                    continue
                name, _, value = line.partition(":")
                if name.strip() in _CPUINFO_FIELDS:
                    out.append(f"{name.strip()}={value.strip()}")
    except OSError:
        pass
    return out


def _sysctl(*names: str) -> list[str]:
    import ctypes

    libc = ctypes.CDLL(None)
    out = []
    for name in names:
        size = ctypes.c_size_t(0)
        if libc.sysctlbyname(name.encode(), None, ctypes.byref(size), None, 0) == 0 and size.value:
            buf = ctypes.create_string_buffer(size.value)
            if libc.sysctlbyname(name.encode(), buf, ctypes.byref(size), None, 0) == 0:
                out.append(f"{name}={buf.value.decode(errors='replace')}")
    return out


def sources_digest(root: str | os.PathLike, files: list[str | os.PathLike], memo_dir: Path | None = None) -> str:
    """sha256 hex digest of `files` (their paths relative to `root`, and contents).

    The digest is remembered in `memo_dir` (default: the cache directory's fingerprints/) under a
    name made from the files' stat data (path, size, inode, mtime and ctime in ns), so a process
    whose files are unchanged stats them instead of reading them. Any write to a file changes its
    ctime, so an edit is never missed, even one that restores the old size and mtime.
    """
    memo_dir = config.get().cache_dir / "fingerprints" if memo_dir is None else Path(memo_dir)
    stat_key = _stat_key(files)
    memo = memo_dir / stat_key[:40]
    try:
        text = memo.read_text()
        if len(text) == 64 and not text.strip("0123456789abcdef"):
            return text
    except OSError:
        pass
    h = sha256()
    for f in files:
        h.update(f"{Path(f).relative_to(root).as_posix()}\0".encode())
        with open(f, "rb") as src:
            h.update(src.read())
        h.update(b"\0")
    value = h.hexdigest()
    if _stat_key(files) == stat_key:  # unchanged while being read
        try:
            write_atomic(memo, value.encode())
        except OSError:
            pass  # an unwritable cache directory: recompute in each process
    return value


def _stat_key(files: list[str | os.PathLike]) -> str:
    stat = os.stat
    parts = []
    for f in files:
        st = stat(f)
        parts.append(f"{os.fspath(f)}\0{st.st_size}\0{st.st_ino}\0{st.st_mtime_ns}\0{st.st_ctime_ns}")
    return sha256("\n".join(parts).encode()).hexdigest()


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
            metadata = _json_loads(meta_path.read_bytes())
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
        import json

        meta_bytes = json.dumps(metadata, sort_keys=True).encode()
        hit = self._memory.get(key)
        if hit is not None:
            return hit
        so_path, meta_path = self._paths(key)
        try:
            write_atomic(so_path, shared_object)
            write_atomic(meta_path, meta_bytes)
        except OSError as exc:
            warnings.warn(f"alloy kernel cache: cannot write {so_path.parent} ({exc}); not caching on disk")
            so_path = _private_dir() / so_path.name
            write_atomic(so_path, shared_object)
        if str(so_path) in _handles:
            # An older file at this path is loaded (it failed to give a kernel):
            # dlopen would hand that one back, so load a private copy.
            so_path = _private_dir() / so_path.name
            write_atomic(so_path, shared_object)
        # the metadata as a later get() reads it back (tuples become lists)
        kernel = _load(so_path, json.loads(meta_bytes))
        self._memory[key] = kernel
        return kernel

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.directory / key[:2]
        return folder / f"{key}.so", folder / f"{key}.json"


class DeviceCodeCache:
    """Disk cache of a GPU target's device code (text: PTX) and its launch metadata, keyed like KernelCache:
    `<cache_dir>/kernels/<target>/<key[:2]>/<key><suffix>` and `<key>.json`, the metadata written last."""

    def __init__(self, target: str, suffix: str, cache_dir: str | os.PathLike | None = None):
        self.target, self.suffix = target, suffix
        self._cache_dir = None if cache_dir is None else Path(cache_dir)

    def _paths(self, key: str) -> tuple[Path, Path]:
        _check_key(key)
        base = self._cache_dir if self._cache_dir is not None else config.get().cache_dir
        folder = base / "kernels" / self.target / key[:2]
        return folder / f"{key}{self.suffix}", folder / f"{key}.json"

    def get(self, key: str) -> tuple[str, dict] | None:
        """(device code, metadata) for `key`, or None when missing or unreadable."""
        import json

        code_path, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_bytes())
            return code_path.read_text(), meta
        except (OSError, ValueError):
            return None

    def put(self, key: str, code: str, metadata: dict) -> None:
        import json

        code_path, meta_path = self._paths(key)
        write_atomic(code_path, code.encode())
        write_atomic(meta_path, json.dumps(metadata, sort_keys=True).encode())


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not 0 < len(key) <= 128 or not _KEY_CHARS.issuperset(key):
        raise ValueError(f"kernel cache key must be 1-128 characters of [0-9A-Za-z_-], got {key!r}")


def _check_metadata(metadata: dict) -> None:
    import json

    if not isinstance(metadata, dict):
        raise TypeError(f"KernelCache.put: metadata must be a dict, got {type(metadata).__name__}")
    entry = metadata.get("entry")
    if not isinstance(entry, str) or not entry:
        raise ValueError(f"KernelCache.put: metadata['entry'] must name the entry symbol, got {entry!r}")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"KernelCache.put: metadata is not JSON-serializable: {exc}") from None


_JSON_WORDS = {"true": True, "false": False, "null": None}


def _json_loads(data: bytes) -> object:
    """`json.loads(data)`, without importing json when it can: JSON text without a backslash (so
    without escapes, the one place JSON strings and Python strings differ) is parsed as a Python
    expression and converted node by node: objects (string keys), arrays, strings, numbers,
    true/false/null (a few Python-only spellings, like single-quoted strings, read as they
    obviously mean). Anything else goes to json.loads, which raises on what is not JSON."""
    text = data.decode()
    if "\\" not in text:
        try:
            return _from_json_ast(ast.parse(text, mode="eval").body)
        except (SyntaxError, ValueError, RecursionError):
            pass
    import json

    return json.loads(text)


def _from_json_ast(node: ast.AST) -> object:
    if isinstance(node, ast.Dict):
        keys = [_from_json_ast(k) if k is not None else None for k in node.keys]
        if not all(isinstance(k, str) for k in keys):
            raise ValueError("not a JSON object key")
        return dict(zip(keys, map(_from_json_ast, node.values)))
    if isinstance(node, ast.List):
        return [_from_json_ast(e) for e in node.elts]
    if isinstance(node, ast.Constant) and type(node.value) in (str, int, float):
        return node.value
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float)):
        return -node.operand.value
    if isinstance(node, ast.Name) and node.id in _JSON_WORDS:
        return _JSON_WORDS[node.id]
    raise ValueError(f"not JSON: {type(node).__name__}")


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


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` through a temporary file renamed into place: readers see the old file or the whole new one."""
    import threading

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
