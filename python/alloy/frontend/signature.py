"""Kernel parameters and the specialisation a launch asks for.

`Param` describes one parameter of a kernel as written; `Spec` is what one
compilation is specialised on (constexpr values, argument dtypes and ranks).
`Slot` tells the runtime how to fill each 8-byte argument slot at launch.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass

from ..language import core
from ..language import dtypes as dt


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "array" | "scalar" | "output" | "constexpr" (arrays vs scalars decided per launch)
    default: object = inspect.Parameter.empty


def params_of(fn) -> tuple[Param, ...]:
    out = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise TypeError(f"kernel '{fn.__name__}': *args/**kwargs parameters are not supported")
        ann = p.annotation
        if ann is core.constexpr or ann == "al.constexpr" or ann == "constexpr":
            kind = "constexpr"
        elif ann is core.output or ann == "al.output" or ann == "output":
            kind = "output"
        else:
            kind = "value"
        out.append(Param(p.name, kind, p.default))
    return tuple(out)


@dataclass(frozen=True)
class ArgSpec:
    """How one runtime parameter is specialised: an array of `dtype` and `rank`, or a scalar."""
    name: str
    kind: str  # "array" | "scalar" | "output"
    dtype: dt.dtype
    rank: int = 0


@dataclass(frozen=True)
class Slot:
    """One 8-byte slot of the packed argument block."""
    kind: str  # "ptr" | "dim" | "scalar"
    param: str
    dim: int = 0
    dtype: dt.dtype = dt.int32


@dataclass(frozen=True)
class Spec:
    args: tuple[ArgSpec, ...]
    constexprs: tuple[tuple[str, object], ...]
    threads: int | None = None  # the launch's threads= (threadgroup size), None for the default

    def key(self) -> tuple:
        """The hashable identity of the specialisation (computed once per Spec)."""
        key = self.__dict__.get("_key")
        if key is None:
            key = (tuple((a.name, a.kind, a.dtype.name if a.dtype else None, a.rank) for a in self.args),
                   tuple((k, _const_key(v)) for k, v in self.constexprs))
            key = key if self.threads is None else key + (("threads", self.threads),)
            object.__setattr__(self, "_key", key)
        return key


def _const_key(v):
    if isinstance(v, dt.dtype):
        return ("dtype", v.name)
    return (type(v).__name__, v)
