"""`@al.kernel` objects: argument binding, specialisation, the compiled-specialisation memo.

`kernel[grid](*args, **kwargs)` goes through the one launch path
(runtime/launch.py) to the configured device (runtime/device.py).
"""
from __future__ import annotations

import inspect as _inspect

import numpy as np

from ..frontend.signature import ArgSpec, Spec, params_of
from ..language import dtypes as dt
from .buffer import KERNEL_DTYPES, as_kernel_array
from .arguments import THREADS
from .outputs import allocated_by_launch

_EMPTY = _inspect.Parameter.empty
MAX_THREADS = 1024


def _threads(v, where) -> int:
    """A `threads=` launch value: a multiple of the 32-lane SIMD group, 32 to MAX_THREADS."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 32 <= v <= MAX_THREADS or v % 32:
        raise ValueError(f"{where}: threads must be a multiple of 32 from 32 to {MAX_THREADS}, got {v!r}")
    return int(v)


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

    def __init__(self, fn, writes_all_outputs: bool = False):
        self.fn = fn
        self.__name__ = fn.__name__
        self.__doc__ = fn.__doc__
        self.writes_all_outputs = writes_all_outputs  # declared: every launch stores every output element
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
        if "threads" in kwargs and all(p.name != "threads" for p in self.params):
            bound[THREADS] = _threads(kwargs.pop("threads"), where)
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
            if p.kind != "constexpr" and type(v) is np.ndarray and v.flags.c_contiguous and v.dtype in KERNEL_DTYPES:
                host[p.name] = (v.ctypes.data, v.shape, v)  # the common case, without building messages
                argspecs.append(ArgSpec(p.name, "output" if p.kind == "output" else "array", dt.from_numpy(v.dtype),
                                        v.ndim))
                continue
            where = f"kernel '{self.__name__}', argument '{p.name}'"
            if p.kind == "constexpr":
                if not isinstance(v, (bool, int, float, str, dt.dtype, type(None))):
                    raise TypeError(f"{where}: constexpr values must be numbers, strings or dtypes, "
                                    f"got {type(v).__name__}")
                consts.append((p.name, v))
            elif p.kind == "output":
                if allocated_by_launch(v):
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
        return Spec(tuple(argspecs), tuple(consts), bound.get(THREADS)), host

    def host_data(self, bound) -> dict:
        """specialize()'s per-param host data alone, for arguments already specialised (a deferred launch
        binding its arrays when it runs): {name: (address, shape, owner)} of the arrays, scalars as given."""
        host = {}
        for p in self.params:
            if p.kind == "constexpr":
                continue
            v = bound[p.name]
            if allocated_by_launch(v):
                continue
            if type(v) is np.ndarray:
                host[p.name] = (v.ctypes.data, v.shape, v)
            elif isinstance(v, (int, float, bool, np.number, np.bool_)):
                host[p.name] = v
            else:
                ptr, shape, _, keep = as_kernel_array(v, f"kernel '{self.__name__}', argument '{p.name}'")
                host[p.name] = (ptr, shape, keep)
        return host

    # ---------------------------------------------------------------- launch
    def compiled_for(self, spec: Spec, target: str | None = None):
        from .. import config

        cfg = config.get()
        target = target or cfg.target
        key = (spec.key(), target, {"cpu": cfg.cpu_target, "cuda": cfg.cuda_arch}.get(target))
        c = self._compiled.get(key)
        if c is None:
            from .specializations import compile_spec

            c = compile_spec(self.source, self.source_hash, spec, target)
            self._compiled[key] = c
        return c

    def launch(self, grid, args, kwargs, target: str | None = None):
        """`self[grid](*args, **kwargs)`, on `target` when given (else alloy.config's)."""
        from .launch import launch

        return launch(self, grid, args, kwargs, target)


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



