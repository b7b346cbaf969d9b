"""Compiled specialisations: the kernel cache in front of the compiler.

The cache key covers the kernel's source (and its @al.func helpers, and the
global and closure values they name: runtime/helpers.py), the specialisation
(argument dtypes and ranks, constexpr values), the target, the compiler's own
sources (`compiler_fingerprint`) and, for the CPU, the host CPU and the
`cpu_target` setting; shapes and scalar values are launch-time values, so they
never recompile. Computing the key neither parses the kernel nor imports MLIR:
the frontend runs, and MLIR is imported, only on a cache miss (alloy.compiler).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..frontend.launch_metadata import LaunchMetadata, MetadataFormatError, OutputStore
from ..frontend.signature import Slot, Spec
from ..language import dtypes as dt
from .cache import DeviceCodeCache, KernelCache, cache_key, host_cpu

_cache: KernelCache | None = None
PTX_CACHE = DeviceCodeCache("cuda", ".ptx")  # follows alloy.config.cache_dir
MSL_CACHE = DeviceCodeCache("metal", ".metal")


def kernel_cache() -> KernelCache:
    global _cache
    if _cache is None:
        _cache = KernelCache()
    return _cache


@dataclass
class Compiled:
    """A compiled specialisation as launches use it: the entry address (CPU), its metadata, its cache key."""

    fn_addr: int
    slots: tuple[Slot, ...]
    outputs: dict[str, dt.dtype]
    stores: tuple[OutputStore, ...]
    key: str
    target: str = "cpu"
    launch: dict | None = None  # GPUs: the launch fields + {"ptx" or "msl", "entry"}
    zero_outputs: bool = True  # outputs the runtime allocates start zeroed (CUDA: only for kernels with atomics)


def _compiled(fn_addr: int, meta: LaunchMetadata, key: str) -> Compiled:
    return Compiled(fn_addr, meta.slots, meta.outputs, meta.stores, key, launch=dict(meta.launch))


def _read(data) -> LaunchMetadata | None:
    """Cached metadata, or None when another compiler version wrote it (the entry is then rebuilt)."""
    try:
        return LaunchMetadata.from_json(data)
    except MetadataFormatError:
        return None


_fingerprint: str | None = None
_COMPILER_SOURCES = ("compiler.py", "version.py", "frontend", "dialects", "language", "passes", "targets")


def compiler_fingerprint() -> str:
    """Digest of the compiler's own sources, so a changed compiler never reuses stale cache entries
    (memoised on the files' stat data by `sources_digest`: a warm start stats them, reads none)."""
    global _fingerprint
    if _fingerprint is None:
        import os

        from .cache import sources_digest

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        files = []

        def walk(folder):
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
            files.extend(e.path for e in entries if e.name.endswith(".py") and e.is_file())
            for e in entries:
                if e.is_dir() and e.name != "__pycache__":
                    walk(e.path)

        for name in _COMPILER_SOURCES:
            path = os.path.join(root, name)
            files.append(path) if name.endswith(".py") else walk(path)
        _fingerprint = sources_digest(root, files)[:16]
    return _fingerprint


def cuda_key(source_hash: str, spec: Spec, arch: str) -> str:
    """Cache key of one CUDA specialisation: like the CPU's, it covers the whole compiler's sources."""
    return cache_key(source_hash, spec.key(), "cuda", arch, compiler_fingerprint())


def _device_code(cache: DeviceCodeCache, what: str, key: str, source, compile_fn) -> tuple[str, LaunchMetadata]:
    """(device code text, metadata) from `cache`, or from `compile_fn()` -> (text, metadata), stored there.
    MLIR is imported only on a miss; without it a miss fails naming the cache and key."""
    import importlib.util

    hit = cache.get(key)
    meta = _read(hit[1]) if hit is not None else None
    if meta is not None:
        return hit[0], meta
    if importlib.util.find_spec("mlir") is None:
        raise RuntimeError(f"kernel '{source.name}': no {what} for this specialisation in the kernel "
                           f"cache ({_config().cache_dir}, key {key}) and MLIR is not installed to compile it")
    code, meta = compile_fn()
    cache.put(key, code, meta.to_json())
    return code, meta


def _gpu_compiled(meta: LaunchMetadata, key: str, target: str, **code) -> Compiled:
    c = _compiled(0, meta, key)
    c.target = target
    c.launch = dict(meta.launch, entry=meta.entry, **code)
    return c


def _compile_cuda(source, source_hash: str, spec: Spec) -> Compiled:
    """PTX for one specialisation, from the PTX cache or compiled."""
    from ..compiler import compile_cuda

    arch = _config().cuda_arch

    def compile_fn():
        art, meta = compile_cuda(source, spec, arch)
        return art.ptx, meta

    key = cuda_key(source_hash, spec, arch)
    ptx, meta = _device_code(PTX_CACHE, "PTX", key, source, compile_fn)
    c = _gpu_compiled(meta, key, "cuda", ptx=ptx)
    c.zero_outputs = bool(meta.launch.get("atomics", True))
    return c


def _compile_metal(source, source_hash: str, spec: Spec) -> Compiled:
    """MSL for one specialisation, from the MSL cache or compiled (Metal compiles it at load). Outputs live in
    host memory the launch copies in, so they start zeroed."""
    from ..compiler import compile_metal

    def compile_fn():
        art, meta = compile_metal(source, spec)
        return art.msl, meta

    key = cache_key(source_hash, spec.key(), "metal", compiler_fingerprint())
    msl, meta = _device_code(MSL_CACHE, "MSL", key, source, compile_fn)
    return _gpu_compiled(meta, key, "metal", msl=msl)


def _config():
    from .. import config

    return config.get()


def compile_spec(source, source_hash: str, spec: Spec, target: str = "cpu") -> Compiled:
    if target == "cuda":
        return _compile_cuda(source, source_hash, spec)
    if target == "metal":
        return _compile_metal(source, source_hash, spec)
    if target != "cpu":
        raise NotImplementedError(f"target '{target}' is not available; use 'cpu', 'cuda' or 'metal'")
    key = cache_key(source_hash, spec.key(), target, compiler_fingerprint(), host_cpu(), _config().cpu_target)
    cache = kernel_cache()
    hit = cache.get(key)
    meta = _read(hit.metadata) if hit is not None else None
    if meta is not None:
        return _compiled(hit.fn_addr, meta, key)
    from ..compiler import compile_cpu

    art, meta = compile_cpu(source, spec)
    entry = cache.put(key, art.shared_object, meta.to_json())
    return _compiled(entry.fn_addr, meta, key)
