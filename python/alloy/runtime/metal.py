"""The Metal device (macOS): MSL compiled by Metal at load, host arrays copied through shared buffers.

    alloy.config.set(target="metal")
    z = add[grid](x, y, n)            # numpy arrays, torch CPU tensors or AlloyBuffers in, numpy arrays out

UNVERIFIED: this project has no Mac. The native half (runtime/metal/device.mm) is built only on macOS
and has never been compiled or run; on other systems a launch compiles the kernel's MSL into the
kernel cache (`specializations.MSL_CACHE`) and then raises `MetalUnavailable`, as a CUDA launch without
a driver does. Every argument array is copied into a shared-storage MTLBuffer and back after the
dispatch (kernels may write any pointer argument); zero-copy wrapping of page-aligned arrays is not
done yet.
"""
from __future__ import annotations

import ctypes
import importlib

import numpy as np

from .buffer import AlloyBuffer
from .device import Device, DeviceRun

# bytes of a scalar parameter (`constant T&` in the MSL; index is a 32-bit int there)
SCALAR_BYTES = {"i1": 1, "i8": 1, "i16": 2, "i32": 4, "i64": 8, "f16": 2, "bf16": 2, "f32": 4, "f64": 8,
                "index": 4}


class MetalUnavailable(RuntimeError):
    """No Metal device in this process (the message says why)."""


def _rt():
    try:
        runtime = importlib.import_module("alloy._runtime")
    except ImportError as e:
        raise MetalUnavailable(f"alloy._runtime is not built: {e}") from None
    if not hasattr(runtime, "metal_available"):
        raise MetalUnavailable("Metal runs only on macOS: this alloy._runtime was built without Metal "
                               "(runtime/metal/ is compiled on Apple platforms only)")
    if not runtime.metal_available():
        raise MetalUnavailable("no Metal device (MTLCreateSystemDefaultDevice returned nil)")
    return runtime


def available() -> bool:
    try:
        _rt()
    except MetalUnavailable:
        return False
    return True


_pipelines: dict = {}  # cache key -> pipeline handle


class MetalRun(DeviceRun):
    def __init__(self, rt, compiled, kernel, bound) -> None:
        self.rt, self.compiled = rt, compiled
        key = compiled.key
        if key not in _pipelines:
            _pipelines[key] = rt.metal_load_pipeline(compiled.launch["msl"], compiled.launch["entry"])
        self.pipeline = _pipelines[key]
        self.arrays, self.buffers = {}, []  # buffers: (handle, host array) copied back after the dispatch
        for p in kernel.params:
            v = bound[p.name]
            if p.kind == "constexpr" or v is None or isinstance(v, (bool, int, float, np.number, np.bool_)):
                continue
            host = v if isinstance(v, AlloyBuffer) else AlloyBuffer.from_array(v)  # a view, not a copy
            self.arrays[p.name] = (self._buffer_from(host.numpy()), host.shape)

    def _buffer_from(self, host: np.ndarray) -> int:
        handle = self.rt.metal_new_buffer(host.nbytes)
        ctypes.memmove(self.rt.metal_buffer_contents(handle), host.ctypes.data, host.nbytes)
        self.buffers.append((handle, host))
        return handle

    def allocate(self, shape, dtype, zero):
        host = np.zeros(shape, dtype)
        return self._buffer_from(host), host

    def execute(self, grid, slots):
        params = self.compiled.launch["params"]
        sizes = [0 if kind == "ptr" else SCALAR_BYTES[kind] for kind in params]
        self.rt.metal_launch(self.pipeline, grid[0], grid[1], grid[2], self.compiled.launch["num_threads"],
                             list(slots), sizes)

    def finish(self, outputs):
        for handle, host in self.buffers:
            if host.flags.writeable:
                ctypes.memmove(host.ctypes.data, self.rt.metal_buffer_contents(handle), host.nbytes)
            self.rt.metal_release(handle)
        return outputs


class MetalDevice(Device):
    target = "metal"

    def start(self, kernel, bound):
        spec, _ = kernel.specialize(bound)  # also checks every array (contiguous, a kernel dtype)
        c = kernel.compiled_for(spec, "metal")  # before the device check: the MSL is cached either way
        return MetalRun(_rt(), c, kernel, bound)


METAL = MetalDevice()
