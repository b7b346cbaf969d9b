"""The device interface: what the one launch path (launch.py) asks of a target's runtime.

A `Device` turns a bound launch into a `DeviceRun`: it finds the compiled
specialisation and binds the array arguments in its memory; the run then
allocates the outputs the launch infers, executes the grid and hands back the
results. `CpuDevice` (cpu.py) runs on the native thread pool, `CudaDevice`
(cuda.py) through the CUDA driver, `MetalDevice` (metal.py; macOS, unverified)
through Metal; the launch path (launch.py) is the same for all three.
"""
from __future__ import annotations

from typing import Any


class DeviceRun:
    """One launch on a device: bound arrays, output allocation, execution, results."""

    compiled: Any  # the Compiled specialisation (runtime/specializations.py)
    arrays: dict  # parameter name -> (address, shape) of every bound array argument and given output

    def allocate(self, shape: tuple, dtype, zero: bool) -> tuple[int, Any]:
        """(address, result object) of a new output buffer; `zero` asks for zero-filled memory."""
        raise NotImplementedError

    def execute(self, grid: tuple[int, int, int], slots: list[int]) -> None:
        raise NotImplementedError

    def finish(self, outputs: dict) -> dict:
        """The results to return, by output name (after any copy back)."""
        return outputs


class Device:
    """A target's runtime, as the launch path sees it."""

    target: str  # alloy.config target name

    def check_grid(self, kernel_name: str, grid: tuple[int, int, int]) -> None:
        """Raise ValueError when the device cannot run a grid this large."""

    def start(self, kernel, bound: dict) -> DeviceRun:
        """Compile or look up the specialisation for the bound arguments (loading its module on the device
        once per process) and bind them."""
        raise NotImplementedError

    def synchronize(self) -> None:
        """Wait for the device's launched work (the CPU and Metal launches return when done)."""
