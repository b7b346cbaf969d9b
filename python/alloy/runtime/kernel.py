"""`@al.kernel` objects and their launch: `kernel[grid](*args, **kwargs)`.

A launch binds the arguments (numpy arrays, torch CPU tensors, AlloyBuffers,
Python scalars), finds or compiles the specialisation, allocates `al.output`
buffers with inferred shapes, packs the 8-byte argument slots and runs the
grid on the native thread pool.
"""
from __future__ import annotations

import inspect as _inspect
from array import array

import numpy as np

from ..frontend.signature import ArgSpec, Spec, params_of
from ..language import dtypes as dt
from .arguments import scalar_slot
from .buffer import AlloyBuffer, as_kernel_array
from .outputs import InferenceError, infer_output_shape

_EMPTY = _inspect.Parameter.empty
_ARRAY_TYPES = (np.ndarray, AlloyBuffer)


def _scalar_spec(v, where):
    if isinstance(v, (bool, np.bool_)):
        return dt.bool_
    if isinstance(v, (int, np.integer)):
        if isinstance(v, np.integer):
            return dt.from_numpy(v.dtype)
        return dt.int32 if -2**31 <= v < 2**31 else dt.int64
    if isinstance(v, (float, np.floating)):
        return dt.from_numpy(v.dtype) if isinstance(v, np.floating) else dt.float32
    raise TypeError(f"{where}: expected an array, a tensor or a number, got {type(v).__name__}")


class Kernel:
    """A compiled-on-demand kernel. Launch with `kernel[grid](...)`."""

    __alloy_kernel__ = True

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.params = params_of(fn)
        self._source = None
        self._hash = None
        self._compiled: dict = {}
        self._shapes: dict = {}

    def __repr__(self):
        return f"<alloy kernel {self.__name__}>"

    @property
    def source(self):
        """The kernel's FunctionSource (parsed on first use of its AST, i.e. on a cache miss)."""
        if self._source is None:
            from ..frontend.sources import FunctionSource

            self._source = FunctionSource(self.fn, is_kernel=True)
        return self._source

    @property
    def source_hash(self) -> str:
        """Digest of the source text, its @al.func helpers and the global/closure values it names
        (runtime/helpers.py), computed once per kernel object without parsing."""
        if self._hash is None:
            from .helpers import kernel_digest

            self._hash = kernel_digest(self.fn)
        return self._hash

    def __call__(self, *args, **kwargs):
        raise TypeError(f"launch kernel '{self.__name__}' with a grid: {self.__name__}[grid](...)")

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launch(grid, args, kwargs)

    # ---------------------------------------------------------------- binding
    def bind(self, args, kwargs):
        """Map the call's arguments to parameters: {name: value}, outputs given or None."""
        where = f"kernel '{self.__name__}'"
        bound, pos = {}, list(args)
        kwargs = dict(kwargs)
        for p in self.params:
            if p.kind == "output":
                bound[p.name] = kwargs.pop(p.name, None)
                continue
            if pos:
                bound[p.name] = pos.pop(0)
            elif p.name in kwargs:
                bound[p.name] = kwargs.pop(p.name)
            elif p.default is not _EMPTY:
                bound[p.name] = p.default
            else:
                raise TypeError(f"{where}: missing argument '{p.name}'")
        if pos:
            raise TypeError(f"{where}: takes {sum(p.kind != 'output' for p in self.params)} positional "
                            f"arguments but {len(args)} were given")
        if kwargs:
            twice = sorted(k for k in kwargs if k in bound)
            if twice:
                outs = [p.name for p in self.params if p.kind == "output"]
                hint = f" (al.output parameters are passed by keyword only: {outs[0]}=...)" if outs else ""
                raise TypeError(f"{where}: got multiple values for argument(s) {', '.join(twice)}{hint}")
            raise TypeError(f"{where}: unexpected argument(s) {', '.join(sorted(kwargs))}")
        return bound

    def specialize(self, bound):
        """(Spec, per-param host data) for bound arguments."""
        argspecs, consts, host = [], [], {}
        for p in self.params:
            v = bound[p.name]
            where = f"kernel '{self.__name__}', argument '{p.name}'"
            if p.kind == "constexpr":
                if not isinstance(v, (bool, int, float, str, dt.dtype, type(None))):
                    raise TypeError(f"{where}: constexpr values must be numbers, strings or dtypes, "
                                    f"got {type(v).__name__}")
                consts.append((p.name, v))
            elif p.kind == "output":
                if v is None:
                    argspecs.append(ArgSpec(p.name, "output", None))
                else:
                    ptr, shape, npdt, keep = as_kernel_array(v, where)
                    argspecs.append(ArgSpec(p.name, "output", dt.from_numpy(npdt), len(shape)))
                    host[p.name] = (ptr, shape, keep)
            elif isinstance(v, (int, float, bool, np.number, np.bool_)):
                d = _scalar_spec(v, where)
                argspecs.append(ArgSpec(p.name, "scalar", d))
                host[p.name] = v
            else:
                ptr, shape, npdt, keep = as_kernel_array(v, where)
                argspecs.append(ArgSpec(p.name, "array", dt.from_numpy(npdt), len(shape)))
                host[p.name] = (ptr, shape, keep)
        return Spec(tuple(argspecs), tuple(consts)), host

    # ---------------------------------------------------------------- launch
    def compiled_for(self, spec: Spec, target: str | None = None):
        from .. import config

        cfg = config.get()
        target = target or cfg.target
        key = (spec.key(), target, cfg.cpu_target if target == "cpu" else cfg.cuda_arch)
        c = self._compiled.get(key)
        if c is None:
            from .specializations import compile_spec

            c = compile_spec(self.source, self.source_hash, spec, target)
            self._compiled[key] = c
        return c

    @staticmethod
    def _grid(grid, bound):
        if callable(grid):
            grid = grid(bound)
        if isinstance(grid, (int, np.integer)):
            grid = (int(grid),)
        grid = tuple(int(g) for g in grid)
        if not 1 <= len(grid) <= 3:
            raise ValueError(f"grid must have 1 to 3 dimensions, got {grid}")
        if any(g < 0 for g in grid):
            raise ValueError(f"grid sizes must be >= 0, got {grid}")
        return grid + (1,) * (3 - len(grid))

    def launch(self, grid, args, kwargs):
        from .. import config

        if config.get().target == "cuda":
            from . import cuda

            return cuda.launch(self, grid, args, kwargs)
        from . import native

        bound = self.bind(args, kwargs)
        spec, host = self.specialize(bound)
        g = self._grid(grid, bound)
        c = self.compiled_for(spec)
        slots = [0] * len(c.slots)
        pending = []
        for i, s in enumerate(c.slots):
            h = host.get(s.param)
            if s.kind == "ptr":
                if h is None:
                    pending.append(i)
                else:
                    slots[i] = h[0]
            elif s.kind == "dim":
                slots[i] = h[1][s.dim]
            else:
                slots[i] = scalar_slot(h, s.dtype)
        outs = {p.name: bound[p.name] for p in self.params if p.kind == "output"}
        for i in pending:
            name = c.slots[i].param
            skey = (c.key, name, g, tuple(slots))
            shape = self._shapes.get(skey)
            if shape is None:
                try:
                    shape = infer_output_shape(name, c.stores, g, slots)
                except InferenceError as e:
                    raise ValueError(f"kernel '{self.__name__}': cannot infer the shape of output '{name}' "
                                     f"({e}); pass it explicitly, e.g. {name}=np.zeros(shape, dtype)") from None
                self._shapes[skey] = shape
            buf = AlloyBuffer.from_array(np.zeros(shape, dtype=c.outputs[name].np))
            slots[i] = buf.data_ptr
            outs[name] = buf
        if g[0] * g[1] * g[2]:
            native.launch(c.fn_addr, array("q", slots), g[0], g[1], g[2])
        if not outs:
            return None
        return next(iter(outs.values())) if len(outs) == 1 else tuple(outs.values())


class Func:
    """An `@al.func` helper: inlined into the kernels that call it."""

    def __init__(self, fn):
        self.fn = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self._source = None

    def __alloy_func__(self):
        if self._source is None:
            from ..frontend.sources import FunctionSource

            self._source = FunctionSource(self.fn, is_kernel=False)
        return self._source

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"@al.func '{self.__name__}' can only be called from inside a kernel")



