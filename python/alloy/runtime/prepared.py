"""`al.prepare(kernel, grid, *args, **kwargs)`: a launch resolved once and run many times.

The normal launch path (launch.py) binds, specialises, packs slots and infers output shapes on every
call — tens of microseconds of Python. A model's decode step runs hundreds of small kernels, so its
engine prepares each launch once (every output passed in, buffers allocated by the caller) and then
only swaps the arguments that change: `rebind(name=value)` rewrites their slots in place, `run()` is one
native call. A rebind keeps the specialisation: an array must keep its dtype and rank, a scalar its type.
Prepared launches run eagerly (never deferred by lazy mode) on the CPU target.
"""
from __future__ import annotations

from array import array

import numpy as np

from .arguments import pack_slots, scalar_slot
from .buffer import as_kernel_array
from .launch import device_for, grid_dims
from . import native, profile


class PreparedLaunch:
    """One kernel launch with its compiled entry, grid and argument slots fixed."""

    def __init__(self, kernel, grid, args, kwargs, target: str = "cpu") -> None:
        if target != "cpu":
            raise NotImplementedError(f"prepared launches run on the CPU target, not '{target}'")
        self.kernel = kernel
        bound = kernel.bind(args, kwargs)
        missing = [p.name for p in kernel.params if p.kind == "output" and bound[p.name] is None]
        if missing:
            raise ValueError(f"kernel '{kernel.__name__}': a prepared launch needs every output passed "
                             f"(missing {', '.join(missing)})")
        self.grid = grid_dims(grid, bound)
        device = device_for(target)
        device.check_grid(kernel.__name__, self.grid)
        spec, host = kernel.specialize(bound)
        self._spec = {a.name: a for a in spec.args}
        self._compiled = kernel.compiled_for(spec, target)
        slots, _ = pack_slots(self._compiled, {n: (h[0], h[1]) for n, h in host.items() if isinstance(h, tuple)},
                              bound)
        self._slots = array("q", slots)
        self._keep = {n: h[2] for n, h in host.items() if isinstance(h, tuple)}
        self._scalar_types = {n: type(bound[n]) for n, a in self._spec.items() if a.kind == "scalar"}
        # name -> (kind, [(slot, dim or -1 for the address) | (slot, scalar dtype)], numpy dtype, rank)
        self._bindings: dict[str, tuple] = {}
        for i, slot in enumerate(self._compiled.slots):
            arg = self._spec[slot.param]
            kind, places, _, _ = self._bindings.setdefault(
                slot.param, ("scalar" if arg.kind == "scalar" else "array", [],
                             None if arg.kind == "scalar" else arg.dtype.np, arg.rank))
            places.append((i, slot.dtype) if kind == "scalar" else (i, -1 if slot.kind == "ptr" else slot.dim))
        self._fn = self._compiled.fn_addr

    def rebind(self, **values) -> "PreparedLaunch":
        """Replace arguments (arrays keep dtype and rank, scalars their type); returns self."""
        slots = self._slots
        for name, value in values.items():
            binding = self._bindings.get(name)
            if binding is None:
                raise TypeError(f"kernel '{self.kernel.__name__}': no runtime argument '{name}' to rebind")
            kind, places, np_dtype, rank = binding
            if kind == "scalar":
                self._rebind_scalar(name, value, places)
            elif type(value) is np.ndarray and value.dtype == np_dtype and value.ndim == rank \
                    and value.flags.c_contiguous:  # the fast path: a numpy array like the prepared one
                ptr, shape = value.__array_interface__["data"][0], value.shape
                for i, dim in places:
                    slots[i] = ptr if dim < 0 else shape[dim]
                self._keep[name] = value
            else:
                self._rebind_array(name, value, places, np_dtype, rank)
        return self

    def _rebind_scalar(self, name, value, places) -> None:
        expected = self._scalar_types[name]
        if type(value) is not expected and not (isinstance(value, (int, np.integer))
                                                and issubclass(expected, (int, np.integer))):
            raise TypeError(f"kernel '{self.kernel.__name__}', argument '{name}': rebinding a "
                            f"{expected.__name__} scalar with {type(value).__name__}")
        for i, dtype in places:
            self._slots[i] = scalar_slot(value, dtype)

    def _rebind_array(self, name, value, places, np_dtype, rank) -> None:
        ptr, shape, npdt, keep = as_kernel_array(value, f"kernel '{self.kernel.__name__}', argument '{name}'")
        if np.dtype(npdt) != np_dtype or len(shape) != rank:
            raise TypeError(f"kernel '{self.kernel.__name__}', argument '{name}': prepared for a {rank}-d "
                            f"{np_dtype.name} array, got a {len(shape)}-d {np.dtype(npdt).name} one")
        for i, dim in places:
            self._slots[i] = ptr if dim < 0 else shape[dim]
        self._keep[name] = keep

    def run(self, grid=None) -> None:
        """Launch (over `grid`, three sizes or what `kernel[grid]` accepts, when given; else the prepared grid)."""
        if grid is None:
            grid = self.grid
        elif type(grid) is not tuple or len(grid) != 3:
            grid = grid_dims(grid, None)
        if grid[0] and grid[1] and grid[2]:
            native.launch(self._fn, self._slots, grid[0], grid[1], grid[2])
            profile.count(launches=1)


class LaunchSequence:
    """Prepared launches run back to back by `run()`: one native call each, nothing else. Later rebinds of
    the launches take effect (their slots are shared); a changed grid needs a new sequence."""

    def __init__(self, launches) -> None:
        self._calls = [(launch._fn, launch._slots) + tuple(launch.grid) for launch in launches]

    def __len__(self) -> int:
        return len(self._calls)

    def run(self) -> None:
        launch = native.launch
        for fn, slots, g0, g1, g2 in self._calls:
            if g0 and g1 and g2:
                launch(fn, slots, g0, g1, g2)
        profile.count(launches=len(self._calls))


def prepare(kernel, grid, *args, target: str = "cpu", **kwargs) -> PreparedLaunch:
    """`kernel[grid](*args, **kwargs)` resolved once; every `al.output` must be passed."""
    return PreparedLaunch(kernel, grid, args, kwargs, target)
