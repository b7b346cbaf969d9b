"""Launch plans: a builtin call repeated with arrays like an earlier call's skips its argument checks,
tuning lookup and the launch path.

A builtin call spends tens of microseconds in Python before its kernel runs (checks, output
allocation, binding, specialisation). The first call with an input signature — the types, shapes and
dtypes of its arrays, the target and CPU it compiles for — records its launch as a prepared launch
(runtime/prepared.py); a later call with the same signature allocates its output, rebinds the
prepared launch's arrays and runs it; with torch CUDA tensors the plan is a prepared CUDA launch on the
stream current when it was recorded (the stream is part of the key). A lazy call (numpy arrays, alloy.config `lazy` on) records its
deferred launch instead, and later calls defer the same launch over their arrays (a PendingPlan), so
they fuse with their neighbours as the first did. Plans cover the common case only: C-contiguous numpy
arrays or torch CPU tensors on the CPU target, contiguous torch CUDA tensors on one device; anything
else (AlloyBuffers, which may be pending; views; tensors that require grad) takes the full path. A plan holds no array between calls.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import config
from ..runtime import torch_dtypes
from ..runtime.buffer import AlloyBuffer
from ..runtime.prepared import PreparedLaunch

MAX_PLANS = 256  # per builtin; the oldest goes first


def signature(*arrays) -> tuple | None:
    """The plan key of a call's arrays, or None when the call takes the full path: numpy arrays and torch CPU
    tensors on the CPU target, or torch CUDA tensors (on one device, the current stream)."""
    cfg = config.get()
    parts, cuda = [], None
    for a in arrays:
        if not getattr(a, "shape", ()):  # scalars and 0-d arrays take the full path
            return None
        if type(a) is np.ndarray:
            if not a.flags.c_contiguous:
                return None
            parts.append((a.shape, a.dtype))
        elif torch_dtypes.is_tensor(a):
            if not a.is_contiguous() or a.requires_grad or a.device.type not in ("cpu", "cuda"):
                return None
            if a.device.type == "cuda":
                if cuda not in (None, a.device):
                    return None
                cuda = a.device
            parts.append(("torch", a.device.type, tuple(a.shape), a.dtype))
        else:
            return None
    if cuda is not None:
        import torch

        if len(parts) != sum(p[0] == "torch" and p[1] == "cuda" for p in parts):
            return None  # host arrays mixed in: the full path says why that is refused
        return ("cuda", cfg.cuda_arch, cuda, torch.cuda.current_stream(cuda).cuda_stream, *parts)
    if cfg.target != "cpu":
        return None
    return (cfg.cpu_target, cfg.lazy, *parts)


def call_key(*arrays, options=()) -> tuple | None:
    """The plan key of a call: its arrays' signature and the options its launch bakes in (eps, axis, ...)."""
    sig = signature(*arrays)
    return None if sig is None else sig + tuple(options)


class Plan:
    """One recorded launch of a builtin: the call's arrays (reshaped to the launch's views) and fresh outputs
    rebound, then one native call."""

    def __init__(self, launch: PreparedLaunch, names: tuple[str, ...], views: tuple, outputs: tuple,
                 returned: tuple[int, ...], torch_result: bool) -> None:
        """`outputs`: (parameter, shape returned, shape the launch binds, dtype) of each kernel output;
        `returned`: which of them the builtin returns (one: not as a tuple)."""
        self.launch, self.names, self.views = launch, names, views
        self.outputs = tuple((name, tuple(shape), tuple(view), np.dtype(dtype)) for name, shape, view, dtype in outputs)
        self.returned, self.torch_result = returned, torch_result
        self._lock = threading.Lock()  # the prepared slots are shared: one call at a time
        launch.release()

    def __call__(self, *arrays):
        # arrays bind as they are: a numpy view of a torch tensor would make torch mark its storage
        # unresizable (FSDP frees and regrows parameter storage)
        values = {name: a.reshape(view) for name, a, view in zip(self.names, arrays, self.views)}
        if self.launch.target == "cuda" or self.torch_result:
            import torch  # torch results in torch-owned memory

            device = arrays[0].device if self.launch.target == "cuda" else "cpu"
            bufs = [torch.empty(shape, dtype=torch_dtypes.to_torch(dtype), device=device)
                    for _, shape, _, dtype in self.outputs]
            for (name, _, view, _), buf in zip(self.outputs, bufs):
                values[name] = buf.reshape(view)
        else:
            bufs = [AlloyBuffer.empty(shape, dtype) for _, shape, _, dtype in self.outputs]
            for (name, _, view, _), buf in zip(self.outputs, bufs):
                values[name] = buf.numpy().reshape(view)
        with self._lock:
            self.launch.rebind(**values)
            self.launch.run()
            self.launch.release()
        results = [bufs[i] for i in self.returned]
        return results[0] if len(results) == 1 else tuple(results)


def _numpy_dtype(array) -> np.dtype:
    return torch_dtypes.to_numpy(array.dtype) if torch_dtypes.is_tensor(array) else array.dtype


class PendingPlan:
    """One recorded deferred launch of a builtin (lazy CPU calls with numpy arrays): later calls defer the same
    launch (kernel, grid, specialisation, output shapes) over their own arrays, so they fuse as it did."""

    def __init__(self, node, names: tuple[str, ...], views: tuple, returned: dict) -> None:
        self.kernel, self.grid, self.spec, self.compiled = node.kernel, node.grid, node.spec, node.compiled
        self.shapes, self.names, self.views, self.returned = dict(node.shapes), names, views, returned
        outputs = {p.name for p in node.kernel.params if p.kind == "output"}
        self.template = {k: (None if k in names or k in outputs else v) for k, v in node.bound.items()}

    def __call__(self, *arrays):
        from ..runtime import lazy

        bound = dict(self.template)
        for name, a, view in zip(self.names, arrays, self.views):
            bound[name] = a.reshape(view)
        outs = lazy.pending_outputs(lazy.PendingLaunch(self.kernel, self.grid, bound, self.spec, self.compiled,
                                                       self.shapes))
        results = [outs[name].reshape(shape) for name, shape in self.returned.items()]
        return results[0] if len(results) == 1 else tuple(results)


class Plans:
    """The plans of one builtin, by signature."""

    def __init__(self) -> None:
        self._plans: dict = {}

    def get(self, key):
        return self._plans.get(key) if key is not None else None

    def record_launch(self, key, kernel, grid, args, kwargs, inputs: tuple[str, ...], returned: dict,
                      torch_result: bool) -> None:
        """Keep `kernel[grid](*args, **kwargs)`, which the call of `key` has just run, as its plan (nothing for
        a key of None). `inputs`: the parameters the call's arrays bind, in the call's order; `returned`:
        {output parameter: the shape the builtin returns it in}, in the order it returns them."""
        if key is None:
            return
        from .arrays import LazyOutput

        lazy = [v for v in kwargs.values() if isinstance(v, LazyOutput)]
        if lazy:
            node = lazy[0].buffer.pending if lazy[0].buffer is not None else None
            if node is not None and node.kernel is kernel:  # deferred: later calls defer it too
                views = tuple(tuple(node.bound[name].shape) for name in inputs)
                outputs = {p.name for p in kernel.params if p.kind == "output"}
                if not any(hasattr(v, "shape") for k, v in node.bound.items() if k not in inputs and k not in outputs):
                    self._keep(key, PendingPlan(node, inputs, views, {k: tuple(v) for k, v in returned.items()}))
            return
        on_cuda = any(torch_dtypes.is_tensor(a) and a.is_cuda for a in args)
        launch = PreparedLaunch(kernel, grid, args, kwargs, "cuda" if on_cuda else "cpu")
        bound = kernel.bind(args, kwargs)
        views = tuple(tuple(bound[name].shape) for name in inputs)
        names = [p.name for p in kernel.params if p.kind == "output"]
        outputs = tuple((name, returned.get(name, tuple(bound[name].shape)), tuple(bound[name].shape),
                         _numpy_dtype(bound[name])) for name in names)
        self._keep(key, Plan(launch, inputs, views, outputs, tuple(names.index(name) for name in returned), torch_result))

    def _keep(self, key, plan) -> None:
        if len(self._plans) >= MAX_PLANS:
            self._plans.pop(next(iter(self._plans)))
        self._plans[key] = plan

    def clear(self) -> None:
        self._plans.clear()
