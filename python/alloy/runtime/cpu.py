"""The CPU device: arrays bound in place (numpy, torch CPU tensors, AlloyBuffers), grids on the native thread pool."""
from __future__ import annotations

from array import array

import numpy as np

from . import native
from .buffer import AlloyBuffer
from .device import Device, DeviceRun


class CpuRun(DeviceRun):
    def __init__(self, compiled, host: dict, spec=None) -> None:
        self.compiled, self.spec = compiled, spec
        self.arrays = {name: (h[0], h[1]) for name, h in host.items() if isinstance(h, tuple)}
        self._keep = host  # the arrays' owners stay referenced while the kernel runs

    def allocate(self, shape, dtype, zero):
        buf = AlloyBuffer.from_array(np.zeros(shape, dtype=dtype))  # always zeroed: host memory is cheap to clear
        return buf.data_ptr, buf

    def execute(self, grid, slots):
        native.launch(self.compiled.fn_addr, array("q", slots), grid[0], grid[1], grid[2])


class CpuDevice(Device):
    target = "cpu"

    def start(self, kernel, bound):
        spec, host = kernel.specialize(bound)
        return CpuRun(kernel.compiled_for(spec, "cpu"), host, spec)


CPU = CpuDevice()
