"""The one launch path of `kernel[grid](...)`, for every device (device.py).

Bind the arguments, normalise the grid, let the configured device find the
specialisation and bind the arrays, pack the 8-byte argument slots
(docs/cpu-abi.md; the GPU entries take the same slots), allocate the
`al.output` buffers with inferred shapes, run, and return the outputs (one,
a tuple, or None).
"""
from __future__ import annotations

import numpy as np

from .. import config
from .arguments import THREADS, launch_output_shape, pack_slots
from . import lazy, profile
from .device import Device


def device_for(target: str) -> Device:
    """The device of an alloy.config target name."""
    if target == "cuda":
        from .cuda import CUDA

        return CUDA
    if target == "metal":
        from .metal import METAL

        return METAL
    if target == "cpu":
        from .cpu import CPU

        return CPU
    raise NotImplementedError(f"target '{target}' has no runtime; use 'cpu', 'cuda' or 'metal'")


def grid_dims(grid, bound) -> tuple[int, int, int]:
    """A launch grid (int, tuple, or callable of the bound arguments) as three dimensions."""
    if callable(grid):
        grid = grid(bound if THREADS not in bound else {**bound, "threads": bound[THREADS]})
    if isinstance(grid, (int, np.integer)):
        grid = (int(grid),)
    grid = tuple(int(g) for g in grid)
    if not 1 <= len(grid) <= 3:
        raise ValueError(f"grid must have 1 to 3 dimensions, got {grid}")
    if any(g < 0 for g in grid):
        raise ValueError(f"grid sizes must be >= 0, got {grid}")
    return grid + (1,) * (3 - len(grid))


def launch(kernel, grid, args, kwargs, target: str | None = None):
    """Run `kernel[grid](*args, **kwargs)` on `target` (default: alloy.config's)."""
    device = device_for(target or config.get().target)
    bound = kernel.bind(args, kwargs)
    g = grid_dims(grid, bound)
    device.check_grid(kernel.__name__, g)
    deferred = lazy.defer(kernel, g, bound, device)
    if deferred is not None:
        return deferred
    lazy.before_eager(bound)  # after the pending launches that read arrays this one may write
    run = device.start(kernel, bound)
    c = run.compiled
    slots, pending = pack_slots(c, run.arrays, bound)
    outs = {p.name: bound[p.name] for p in kernel.params if p.kind == "output"}
    for i in pending:
        name = c.slots[i].param
        shape = launch_output_shape(kernel, c, name, g, slots, bound)
        slots[i], outs[name] = run.allocate(shape, c.outputs[name].np, c.zero_outputs)
    profile.count(allocations=len(pending))
    if g[0] * g[1] * g[2]:
        run.execute(g, slots)
        profile.count(launches=1)
    outs = run.finish(outs)
    if not outs:
        return None
    return next(iter(outs.values())) if len(outs) == 1 else tuple(outs.values())
