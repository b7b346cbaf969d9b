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
and `<key>.json` (the launch metadata; written last): `specializations.PTX_CACHE`.
"""
from __future__ import annotations

import importlib
from array import array

import numpy as np

from .. import config
from . import torch_dtypes
from .device import Device, DeviceRun
from .torch_dtypes import is_tensor

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


# ---------------------------------------------------------------- modules
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
def proxy(v):
    """A tiny host stand-in with v's dtype and rank (the specialisation sees only those)."""
    if isinstance(v, DeviceBuffer):
        return np.zeros((1,) * len(v.shape), v.dtype)
    if is_tensor(v):
        return np.zeros((1,) * v.dim(), torch_dtypes.to_numpy(v.dtype))
    return v


_plans: dict = {}  # (kernel id, argument signature) -> Compiled


def _tag(v):
    """What a launch specialises on for one argument value (None: no fast path)."""
    if is_tensor(v):
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
        spec, _ = kernel.specialize({k: proxy(v) for k, v in bound.items()})
        c = kernel.compiled_for(spec, "cuda")
        if sig is not None and None not in sig:
            _plans[sig] = c
    return c


class CudaRun(DeviceRun):
    """A launch through the driver: CUDA tensors and DeviceBuffers bound in place, host arrays copied in and
    back; outputs are torch CUDA tensors when a torch tensor came in (on torch's current stream), else
    DeviceBuffers, returned as numpy arrays when every array argument was a host array."""

    def __init__(self, rt, compiled, kernel, bound) -> None:
        self.rt, self.compiled = rt, compiled
        self.fn = _function(compiled)
        self.arrays = {}
        self.copies = []  # (host array, DeviceBuffer) copied back after the launch
        self.keep = []
        self.host_outputs: dict = {}
        self.use_torch = False
        self.any_device_buffer = False
        where = f"kernel '{kernel.__name__}'"
        for p in kernel.params:
            v = bound[p.name]
            if p.kind == "constexpr" or v is None or isinstance(v, (bool, int, float, np.number, np.bool_)):
                continue
            if isinstance(v, DeviceBuffer):
                self.arrays[p.name] = (v.data_ptr, v.shape)
                self.any_device_buffer = True
            elif is_tensor(v) and v.is_cuda:
                if not v.is_contiguous():
                    raise ValueError(f"{where}, argument '{p.name}': CUDA tensors must be contiguous")
                self.arrays[p.name] = (v.data_ptr(), tuple(v.shape))
                self.use_torch = True
            else:
                a = v.numpy() if is_tensor(v) else np.asarray(v)
                if not a.flags.c_contiguous:
                    raise ValueError(f"{where}, argument '{p.name}': arrays must be C-contiguous")
                b = DeviceBuffer.from_numpy(a)
                self.arrays[p.name] = (b.data_ptr, a.shape)
                self.copies.append((a, b))

    def allocate(self, shape, dtype, zero):
        if self.use_torch:
            import torch

            t = (torch.zeros if zero else torch.empty)(shape, dtype=torch_dtypes.to_torch(dtype), device="cuda")
            return t.data_ptr(), t
        b = DeviceBuffer.zeros(shape, dtype) if zero else DeviceBuffer(shape, dtype)
        self.host_outputs[id(b)] = b
        return b.data_ptr, b

    def execute(self, grid, slots):
        stream = 0
        if self.use_torch:
            import torch

            stream = torch.cuda.current_stream().cuda_stream
        launch = self.compiled.launch
        self.rt.cuda_launch(self.fn, grid[0], grid[1], grid[2], launch["num_threads"],
                            launch.get("dynamic_shared_bytes", 0), stream, array("q", slots))

    def finish(self, outputs):
        to_host = self.host_outputs and not self.any_device_buffer
        if self.copies or to_host:
            self.rt.cuda_synchronize()
            for a, b in self.copies:
                b.copy_to(a)
        if to_host:
            outputs = {k: v.numpy() if id(v) in self.host_outputs else v for k, v in outputs.items()}
        return outputs


class DryRun(DeviceRun):
    """Compile-only mode without a driver: host arrays bound as null pointers, zero-filled host outputs."""

    def __init__(self, compiled, bound) -> None:
        self.compiled = compiled
        self.arrays = {k: (0, tuple(v.shape)) for k, v in bound.items() if hasattr(v, "shape")}

    def allocate(self, shape, dtype, zero):
        return 0, np.zeros(shape, dtype)

    def execute(self, grid, slots):
        pass


class CudaDevice(Device):
    """Launches through the CUDA driver (see the module docstring). Outputs the runtime allocates are
    uninitialised (zeroed only for kernels with atomics): a kernel's stores define them."""

    target = "cuda"

    def synchronize(self):
        _rt().cuda_synchronize()

    def check_grid(self, kernel_name, grid):
        if grid[0] >= 2**31 or grid[1] > 65535 or grid[2] > 65535:
            raise ValueError(f"kernel '{kernel_name}': grid {grid} exceeds CUDA's limits (2^31-1, 65535, 65535)")

    def start(self, kernel, bound):
        c = _compiled(kernel, bound)  # before the driver check: a launch without a GPU still fills the cache
        try:
            rt = _rt()
        except CudaUnavailable:
            if _compile_only:
                return DryRun(c, bound)
            raise
        return CudaRun(rt, c, kernel, bound)


CUDA = CudaDevice()
