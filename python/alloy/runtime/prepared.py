"""`al.prepare(kernel, grid, *args, **kwargs)`: a launch resolved once and run many times.

The normal launch path (launch.py) binds, specialises, packs slots and infers output shapes on every
call — tens of microseconds of Python. A model's decode step runs hundreds of small kernels, so its
engine prepares each launch once (every output passed in, buffers allocated by the caller) and then
only swaps the arguments that change: `rebind(name=value)` rewrites their slots in place, `run()` is one
native call. A rebind keeps the specialisation: an array must keep its dtype and rank, a scalar its type.
Prepared launches run eagerly (never deferred by lazy mode), on the CPU target (host arrays) or the
CUDA target (torch CUDA tensors, on the stream that was current when the launch was prepared).
"""
from __future__ import annotations

from array import array

import numpy as np

from . import torch_dtypes
from .arguments import pack_slots, scalar_slot
from .buffer import as_kernel_array
from .launch import device_for, grid_dims
from . import native, profile


class PreparedLaunch:
    """One kernel launch with its compiled entry, grid and argument slots fixed."""

    def __init__(self, kernel, grid, args, kwargs, target: str = "cpu") -> None:
        if target not in ("cpu", "cuda"):
            raise NotImplementedError(f"prepared launches run on the CPU or CUDA target, not '{target}'")
        self.kernel = kernel
        self.target = target
        bound = kernel.bind(args, kwargs)
        missing = [p.name for p in kernel.params if p.kind == "output" and bound[p.name] is None]
        if missing:
            raise ValueError(f"kernel '{kernel.__name__}': a prepared launch needs every output passed "
                             f"(missing {', '.join(missing)})")
        self.grid = grid_dims(grid, bound)
        device = device_for(target)
        device.check_grid(kernel.__name__, self.grid)
        if target == "cuda":
            from . import cuda

            spec, _ = kernel.specialize({k: cuda.proxy(v) for k, v in bound.items()})
            run = device.start(kernel, bound)
            if not isinstance(run, cuda.CudaRun) or run.copies:
                raise ValueError(f"kernel '{kernel.__name__}': a prepared CUDA launch binds CUDA tensors only "
                                 f"(host arrays would be copied on every run)")
            self._compiled, arrays = run.compiled, run.arrays
            self._keep = {n: v for n, v in bound.items() if hasattr(v, "data_ptr")}
        else:
            spec, host = kernel.specialize(bound)
            self._compiled = kernel.compiled_for(spec, target)
            arrays = {n: (h[0], h[1]) for n, h in host.items() if isinstance(h, tuple)}
            self._keep = {n: h[2] for n, h in host.items() if isinstance(h, tuple)}
        self._spec = {a.name: a for a in spec.args}
        slots, _ = pack_slots(self._compiled, arrays, bound)
        self._slots = array("q", slots)
        self._scalar_types = {n: type(bound[n]) for n, a in self._spec.items() if a.kind == "scalar"}
        # name -> (kind, [(slot, dim or -1 for the address) | (slot, scalar dtype)], numpy dtype, rank)
        self._bindings: dict[str, tuple] = {}
        for i, slot in enumerate(self._compiled.slots):
            arg = self._spec[slot.param]
            kind, places, _, _ = self._bindings.setdefault(
                slot.param, ("scalar" if arg.kind == "scalar" else "array", [],
                             None if arg.kind == "scalar" else arg.dtype.np, arg.rank))
            places.append((i, slot.dtype) if kind == "scalar" else (i, -1 if slot.kind == "ptr" else slot.dim))
        if target == "cuda":
            import torch

            launch = self._compiled.launch
            self._call = (run.rt.cuda_launch, run.fn, launch["num_threads"], launch.get("dynamic_shared_bytes", 0),
                          torch.cuda.current_stream().cuda_stream)
        else:
            self._call = (native.launch, self._compiled.fn_addr)

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
        where = f"kernel '{self.kernel.__name__}', argument '{name}'"
        if self.target == "cuda":
            if not (torch_dtypes.is_tensor(value) and value.is_cuda and value.is_contiguous()):
                raise TypeError(f"{where}: a prepared CUDA launch rebinds contiguous CUDA tensors only")
            ptr, shape, npdt, keep = value.data_ptr(), tuple(value.shape), torch_dtypes.to_numpy(value.dtype), value
        else:
            ptr, shape, npdt, keep = as_kernel_array(value, where)
        if np.dtype(npdt) != np_dtype or len(shape) != rank:
            raise TypeError(f"kernel '{self.kernel.__name__}', argument '{name}': prepared for a {rank}-d "
                            f"{np_dtype.name} array, got a {len(shape)}-d {np.dtype(npdt).name} one")
        for i, dim in places:
            self._slots[i] = ptr if dim < 0 else shape[dim]
        self._keep[name] = keep

    def release(self) -> None:
        """Drop the references to the bound arrays; every array must be rebound before the next run."""
        self._keep = {}

    def run(self, grid=None) -> None:
        """Launch (over `grid`, three sizes or what `kernel[grid]` accepts, when given; else the prepared grid)."""
        if grid is None:
            grid = self.grid
        elif type(grid) is not tuple or len(grid) != 3:
            grid = grid_dims(grid, None)
        if grid[0] and grid[1] and grid[2]:
            _launch(self._call, self._slots, grid)
            profile.count(launches=1)

    def native_call(self) -> tuple:
        """(function, arguments) of this launch's one native call over its prepared grid."""
        return self._call[0], _arguments(self._call, self._slots, self.grid)


class LaunchSequence:
    """Prepared launches run back to back by `run()`: one native call each, nothing else. Later rebinds of
    the launches take effect (their slots are shared); a changed grid needs a new sequence."""

    def __init__(self, launches) -> None:
        self._calls = [launch.native_call() for launch in launches if all(launch.grid)]

    def __len__(self) -> int:
        return len(self._calls)

    def run(self) -> None:
        for function, arguments in self._calls:
            function(*arguments)
        profile.count(launches=len(self._calls))


def _arguments(call: tuple, slots, grid) -> tuple:
    """The native launch's arguments: the CPU entry (fn, slots, grid) or cuda_launch's (fn, grid, threads,
    shared bytes, stream, slots)."""
    if len(call) == 2:
        return (call[1], slots, grid[0], grid[1], grid[2])
    return (call[1], grid[0], grid[1], grid[2], call[2], call[3], call[4], slots)


def _launch(call: tuple, slots, grid) -> None:
    call[0](*_arguments(call, slots, grid))


def prepare(kernel, grid, *args, target: str = "cpu", **kwargs) -> PreparedLaunch:
    """`kernel[grid](*args, **kwargs)` resolved once; every `al.output` must be passed."""
    return PreparedLaunch(kernel, grid, args, kwargs, target)
