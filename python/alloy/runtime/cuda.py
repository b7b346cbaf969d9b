"""The CUDA runtime: device buffers, the PTX cache, and kernel launch through the driver.

    import alloy as al, alloy.runtime.cuda as cuda
    cuda.set_device("cuda")           # alloy.config target; kernels now compile to PTX and run on GPU 0
    z = add[grid](x, y, n)            # x, y: torch CUDA tensors (bound by data_ptr, no copy),
                                      # DeviceBuffers, or numpy arrays (copied in and back)

The driver (libcuda.so.1) is opened by the native runtime at first use, never
at import. Without it, a launch still compiles (filling the kernel cache) and
then raises `CudaUnavailable`, so the same code fills the cache on a machine
without a GPU and runs from it on one with a GPU (where MLIR need not exist).

PTX cache layout, beside the CPU kernels: `<cache_dir>/kernels/cuda/<key[:2]>/<key>.ptx`
and `<key>.json` (the launch metadata; written last).
"""
from __future__ import annotations

import importlib

import json
import os
import threading
from array import array
from pathlib import Path

import numpy as np

from .. import config

_modules: dict[str, tuple[int, int]] = {}  # cache key -> (CUmodule, CUfunction)
_compile_only = False


def compile_only(on: bool = True) -> None:
    """Without a driver, make launches compile (filling the cache) and return zero-filled host
    outputs instead of raising CudaUnavailable: for filling a cache to carry to a GPU machine."""
    global _compile_only
    _compile_only = bool(on)


class CudaUnavailable(RuntimeError):
    """No usable CUDA driver or device in this process (the message says why)."""


def set_device(name: str) -> None:
    """Select the target of later launches: "cpu" or "cuda" (alloy.config's `target`)."""
    config.set(target=name)


def _rt():
    """The native runtime with a live CUDA context, or CudaUnavailable."""
    try:
        _runtime = importlib.import_module("alloy._runtime")  # the extension (not a Python layer)
    except ImportError as e:
        raise CudaUnavailable(f"alloy._runtime is not built: {e}") from None
    if not hasattr(_runtime, "cuda_available"):
        raise CudaUnavailable("alloy._runtime was built without CUDA support (rebuild it: runtime/cuda/)")
    if not _runtime.cuda_available():
        raise CudaUnavailable(_runtime.cuda_error())
    return _runtime


def available() -> bool:
    try:
        _rt()
    except CudaUnavailable:
        return False
    return True


def unavailable_reason() -> str:
    try:
        _rt()
    except CudaUnavailable as e:
        return str(e)
    return ""


def device_name() -> str:
    return _rt().cuda_device_name()


def synchronize() -> None:
    _rt().cuda_synchronize()


# ------------------------------------------------------------------ buffers
class DeviceBuffer:
    """A contiguous array in GPU memory (freed with the object)."""

    def __init__(self, shape, dtype):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self._rt = _rt()
        self.data_ptr = self._rt.cuda_malloc(self.nbytes)

    @classmethod
    def zeros(cls, shape, dtype) -> "DeviceBuffer":
        b = cls(shape, dtype)
        b._rt.cuda_memset(b.data_ptr, 0, b.nbytes)
        return b

    @classmethod
    def from_numpy(cls, a) -> "DeviceBuffer":
        a = np.ascontiguousarray(a)
        b = cls(a.shape, a.dtype)
        b._rt.cuda_memcpy_htod(b.data_ptr, a.ctypes.data, b.nbytes)
        return b

    def copy_to(self, a: np.ndarray) -> None:
        if not a.flags.c_contiguous or a.nbytes != self.nbytes:
            raise ValueError(f"DeviceBuffer.copy_to: needs a C-contiguous array of {self.nbytes} bytes")
        self._rt.cuda_memcpy_dtoh(a.ctypes.data, self.data_ptr, self.nbytes)

    def numpy(self) -> np.ndarray:
        out = np.empty(self.shape, self.dtype)
        self.copy_to(out)
        return out

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __del__(self):
        ptr = getattr(self, "data_ptr", 0)
        if ptr:
            try:
                self._rt.cuda_free(ptr)
            except Exception:  # noqa: BLE001 - freeing at interpreter exit may find the context gone
                pass

    def __repr__(self):
        return f"DeviceBuffer(shape={self.shape}, dtype={self.dtype})"


# --------------------------------------------------------------- PTX cache
def _entry_paths(key: str) -> tuple[Path, Path]:
    folder = config.get().cache_dir / "kernels" / "cuda" / key[:2]
    return folder / f"{key}.ptx", folder / f"{key}.json"


def cache_get(key: str) -> tuple[str, dict] | None:
    """(PTX, metadata) for a cache key, or None."""
    ptx_path, meta_path = _entry_paths(key)
    try:
        meta = json.loads(meta_path.read_bytes())
        return ptx_path.read_text(), meta
    except (OSError, ValueError):
        return None


def cache_put(key: str, ptx: str, meta: dict) -> None:
    ptx_path, meta_path = _entry_paths(key)
    for path, data in ((ptx_path, ptx.encode()), (meta_path, json.dumps(meta, sort_keys=True).encode())):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)


def _function(c) -> int:
    hit = _modules.get(c.key)
    if hit is None:
        rt = _rt()
        mod = rt.cuda_load_module(c.launch["ptx"].encode())
        fn = rt.cuda_get_function(mod, c.launch["entry"])
        dyn = c.launch.get("dynamic_shared_bytes", 0)
        if dyn:
            rt.cuda_set_dynamic_shared(fn, dyn)
        hit = (mod, fn)
        _modules[c.key] = hit
    return hit[1]


# ------------------------------------------------------------------ launch
def _is_torch(v) -> bool:
    t = type(v)
    return t.__module__.startswith("torch") and hasattr(v, "data_ptr") and hasattr(v, "is_cuda")


def _proxy(v):
    """A tiny host stand-in with v's dtype and rank (the specialisation sees only those)."""
    if isinstance(v, DeviceBuffer):
        return np.zeros((1,) * len(v.shape), v.dtype)
    if _is_torch(v):
        return np.zeros((1,) * v.dim(), _np_dtype(v.dtype))
    return v


def _np_dtype(tdtype) -> np.dtype:
    import torch

    if tdtype == torch.bfloat16:
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return torch.empty(0, dtype=tdtype).numpy().dtype


def _torch_dtype(dtype: np.dtype):
    import torch

    if dtype.name == "bfloat16":
        return torch.bfloat16
    return torch.from_numpy(np.empty(0, dtype)).dtype


def _dry_outputs(kernel, bound, c, g):
    """Zero-filled host outputs of the inferred shapes (compile-only mode: nothing runs)."""
    from .arguments import scalar_slot
    from .outputs import infer_output_shape

    shapes = {k: tuple(v.shape) for k, v in bound.items() if hasattr(v, "shape")}
    slots = []
    for s in c.slots:
        if s.kind == "ptr":
            slots.append(0)
        elif s.kind == "dim":
            slots.append(shapes[s.param][s.dim])
        else:
            slots.append(scalar_slot(bound[s.param], s.dtype))
    outs = {}
    for p in kernel.params:
        if p.kind == "output":
            v = bound[p.name]
            outs[p.name] = v if v is not None else np.zeros(
                infer_output_shape(p.name, c.stores, g, slots), c.outputs[p.name].np)
    if not outs:
        return None
    return next(iter(outs.values())) if len(outs) == 1 else tuple(outs.values())


_plans: dict = {}  # (kernel id, argument signature) -> Compiled
_shapes: dict = {}  # (cache key, output, grid, slots) -> inferred shape


def _tag(v):
    """What a launch specialises on for one argument value (None: no fast path)."""
    if _is_torch(v):
        return ("t", v.dtype, v.dim())
    if isinstance(v, np.ndarray):
        return ("n", v.dtype.str, v.ndim)
    if isinstance(v, DeviceBuffer):
        return ("d", v.dtype.str, len(v.shape))
    if isinstance(v, bool):
        return ("b",)
    if isinstance(v, int):
        return ("i", -2**31 <= v < 2**31)
    if isinstance(v, float):
        return ("f",)
    if isinstance(v, (str, type(None))):
        return ("c", v)
    if isinstance(v, np.generic):
        return ("s", v.dtype.str)
    return ("c", v) if getattr(type(v), "__hash__", None) else None


def _compiled(kernel, bound):
    try:
        sig = (id(kernel),) + tuple(_tag(v) if p.kind != "constexpr" else ("c", type(v), v)
                                    for p, v in zip(kernel.params, bound.values()))
        hash(sig)
    except TypeError:
        sig = None
    c = _plans.get(sig) if sig is not None else None
    if c is None:
        spec, _ = kernel.specialize({k: _proxy(v) for k, v in bound.items()})
        c = kernel.compiled_for(spec, "cuda")
        if sig is not None and None not in sig:
            _plans[sig] = c
    return c


def launch(kernel, grid, args, kwargs):
    """kernel[grid](*args, **kwargs) on the GPU (see the module docstring).

    Outputs the runtime allocates are uninitialised (zeroed only for kernels with atomics):
    a kernel's stores define them."""
    from .arguments import scalar_slot
    from .outputs import InferenceError, infer_output_shape

    bound = kernel.bind(args, kwargs)
    g = kernel._grid(grid, bound)
    if g[0] >= 2**31 or g[1] > 65535 or g[2] > 65535:
        raise ValueError(f"kernel '{kernel.__name__}': grid {g} exceeds CUDA's limits (2^31-1, 65535, 65535)")
    c = _compiled(kernel, bound)
    try:
        rt = _rt()
    except CudaUnavailable:
        if _compile_only:
            return _dry_outputs(kernel, bound, c, g)
        raise
    fn = _function(c)
    where = f"kernel '{kernel.__name__}'"
    dev: dict = {}  # param -> (device pointer, shape)
    copies = []  # (numpy array, DeviceBuffer) to copy back after the launch
    keep = []
    use_torch = False
    for p in kernel.params:
        v = bound[p.name]
        if p.kind == "constexpr" or v is None or isinstance(v, (bool, int, float, np.number, np.bool_)):
            continue
        if isinstance(v, DeviceBuffer):
            dev[p.name] = (v.data_ptr, v.shape)
        elif _is_torch(v) and v.is_cuda:
            if not v.is_contiguous():
                raise ValueError(f"{where}, argument '{p.name}': CUDA tensors must be contiguous")
            dev[p.name] = (v.data_ptr(), v.shape)
            use_torch = True
        else:
            a = v.numpy() if _is_torch(v) else np.asarray(v)
            if not a.flags.c_contiguous:
                raise ValueError(f"{where}, argument '{p.name}': arrays must be C-contiguous")
            b = DeviceBuffer.from_numpy(a)
            dev[p.name] = (b.data_ptr, a.shape)
            copies.append((a, b))
    slots = [0] * len(c.slots)
    pending = []
    for i, s in enumerate(c.slots):
        if s.kind == "ptr":
            if s.param in dev:
                slots[i] = dev[s.param][0]
            else:
                pending.append(i)
        elif s.kind == "dim":
            slots[i] = dev[s.param][1][s.dim]
        else:
            slots[i] = scalar_slot(bound[s.param], s.dtype)
    outs = {p.name: bound[p.name] for p in kernel.params if p.kind == "output"}
    host_outs = {}
    zero = c.launch.get("atomics", True)
    for i in pending:
        name = c.slots[i].param
        skey = (c.key, name, g, tuple(slots))
        shape = _shapes.get(skey)
        if shape is None:
            try:
                shape = infer_output_shape(name, c.stores, g, slots)
            except InferenceError as e:
                raise ValueError(f"{where}: cannot infer the shape of output '{name}' ({e}); pass it explicitly")
            _shapes[skey] = shape
        dtype = c.outputs[name].np
        if use_torch:
            import torch

            t = (torch.zeros if zero else torch.empty)(shape, dtype=_torch_dtype(np.dtype(dtype)), device="cuda")
            slots[i] = t.data_ptr()
            outs[name] = t
        else:
            b = DeviceBuffer.zeros(shape, dtype) if zero else DeviceBuffer(shape, dtype)
            keep.append(b)
            slots[i] = b.data_ptr
            host_outs[name] = b
            outs[name] = b
    stream = 0
    if use_torch:
        import torch

        stream = torch.cuda.current_stream().cuda_stream
    if g[0] * g[1] * g[2]:
        rt.cuda_launch(fn, g[0], g[1], g[2], c.launch["num_threads"], c.launch.get("dynamic_shared_bytes", 0), stream,
                       array("q", slots))
    if copies or (host_outs and not any(isinstance(v, DeviceBuffer) for v in bound.values())):
        rt.cuda_synchronize()
        for a, b in copies:
            b.copy_to(a)
        for name, b in host_outs.items():
            outs[name] = b.numpy()
    if not outs:
        return None
    return next(iter(outs.values())) if len(outs) == 1 else tuple(outs.values())
