"""`@al.autotune(configs=[...], key=[...])` and the `Tuner` it is built on (the builtins use it directly).

    @al.autotune(configs=[al.Config(BLOCK=512), al.Config(BLOCK=2048)], key=["n"])
    @al.kernel
    def scale(x, y: al.output, n, BLOCK: al.constexpr):
        ...
    scale[lambda meta: al.cdiv(meta["n"], meta["BLOCK"])](x, n)

On the first launch of a key (the named arguments' values; an array's shape and
dtype) the tuner reads the device's tables (store.py). Without an entry it runs
every configuration on the call's own arguments (the first run of each
compiles it and is not timed), keeps the fastest by best-of-`reps`, records it
in the user table, and then launches the winner. A tuned kernel must not read
its own outputs: the measurement launches it several times on them.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..runtime.launch import device_for
from . import store


class Config:
    """One configuration of a tuned kernel: constexpr values (and `threads=`, a thread-level kernel's
    threadgroup size), passed as launch keywords."""

    def __init__(self, **constexprs) -> None:
        self.constexprs = dict(sorted(constexprs.items()))

    def __eq__(self, other) -> bool:
        return isinstance(other, Config) and self.constexprs == other.constexprs

    def __hash__(self) -> int:
        return hash(tuple(self.constexprs.items()))

    def __repr__(self) -> str:
        return "Config(" + ", ".join(f"{k}={v!r}" for k, v in self.constexprs.items()) + ")"


def key_text(values: Sequence) -> str:
    """A key as stored: JSON of its values (arrays as [shape, dtype])."""
    import json  # not at import: `import alloy` stays free of json (a cache hit needs none)

    def one(v):
        if hasattr(v, "shape") and hasattr(v, "dtype"):
            return [list(int(s) for s in v.shape), str(v.dtype).replace("torch.", "")]
        if isinstance(v, (bool, int, float, str)) or v is None:
            return v
        if isinstance(v, (tuple, list)):
            return [one(x) for x in v]
        if hasattr(v, "item"):  # numpy scalars
            return v.item()
        return repr(v)

    return json.dumps([one(v) for v in values], separators=(",", ":"))


class Tuner:
    """Chooses one of `configs` per (target, key): stored, else measured (or, with `measure_on_miss=False`,
    the stored entry of the nearest key, else the first configuration)."""

    def __init__(self, name: str, configs: Sequence[Config] | Callable[[str, str | None], Sequence[Config]],
                 measure_on_miss: bool = True, reps: int = 5) -> None:
        self.name = name
        self._configs = configs
        self.measure_on_miss = measure_on_miss
        self.reps = reps
        self._chosen: dict = {}

    def configs_for(self, target: str, key: str | None = None) -> list[Config]:
        """The candidates on `target` (a callable `configs` may also look at the key)."""
        configs = list(self._configs(target, key) if callable(self._configs) else self._configs)
        if not configs or not all(isinstance(c, Config) for c in configs):
            raise ValueError(f"tuner '{self.name}': configs must be a non-empty list of al.Config")
        return configs

    def choose(self, target: str, key: str, run: Callable[[Config], object]) -> Config:
        """The configuration for `key`; `run(config)` launches one (used only when measuring)."""
        hit = self._chosen.get((target, key))
        if hit is not None:
            return hit
        configs = self.configs_for(target, key)
        entry = store.lookup(target, self.name, key)
        chosen = Config(**entry["config"]) if entry else None
        if chosen not in configs:
            if self.measure_on_miss:
                chosen, _ = self.measure(target, key, run)
            else:
                chosen = self.nearest(target, key, configs)
        self._chosen[(target, key)] = chosen
        return chosen

    def measure(self, target: str, key: str, run: Callable[[Config], object], record: bool = True,
                progress: Callable[[Config, float], None] | None = None) -> tuple[Config, dict]:
        """Time every configuration (best of `reps` after one untimed run); record and return the winner
        and {config: seconds}. Launches run eagerly while they are timed (alloy.config lazy off)."""
        from .. import config as alloy_config

        device = device_for(target)
        times = {}
        lazy = alloy_config.get().lazy
        alloy_config.set(lazy=False)
        try:
            for config in self.configs_for(target, key):
                run(config)
                device.synchronize()
                best = float("inf")
                for _ in range(self.reps):
                    t0 = time.perf_counter()
                    run(config)
                    device.synchronize()
                    best = min(best, time.perf_counter() - t0)
                times[config] = best
                if progress is not None:
                    progress(config, best)
        finally:
            alloy_config.set(lazy=lazy)
        chosen = min(times, key=times.get)
        if record:
            store.record(target, self.name, key, chosen.constexprs, times[chosen])
        self._chosen[(target, key)] = chosen
        return chosen, times

    def nearest(self, target: str, key: str, configs: list[Config]) -> Config:
        """The stored winner of the closest key with the same non-numeric parts, else configs[0]."""
        import json

        want = _numbers(json.loads(key))
        best, best_distance = configs[0], float("inf")
        for other, entry in store.entries(target, self.name).items():
            try:
                have = _numbers(json.loads(other))
            except ValueError:
                continue
            if len(have) != len(want) or _shape_free(json.loads(other)) != _shape_free(json.loads(key)):
                continue
            distance = sum(abs(_log2(a) - _log2(b)) for a, b in zip(have, want))
            candidate = Config(**entry.get("config", {}))
            if distance < best_distance and candidate in configs:
                best, best_distance = candidate, distance
        return best

    def forget(self) -> None:
        """Drop the in-process choices (the tables are re-read on the next launch)."""
        self._chosen.clear()


def _numbers(value) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    if isinstance(value, list):
        return [x for item in value for x in _numbers(item)]
    return []


def _shape_free(value):
    if isinstance(value, list):
        return [_shape_free(v) for v in value]
    return None if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _log2(x: float) -> float:
    import math

    return math.log2(x + 1.0)


class Autotuned:
    """A kernel under `@al.autotune`: launched like the kernel, `tuned[grid](...)`."""

    def __init__(self, kernel, configs: Sequence[Config], key: Sequence[str], reps: int) -> None:
        if not getattr(kernel, "__alloy_kernel__", False):
            raise TypeError("@al.autotune decorates an @al.kernel (put @al.autotune above @al.kernel)")
        names = {p.name for p in kernel.params}
        unknown = [k for k in key if k not in names]
        if unknown:
            raise ValueError(f"@al.autotune on '{kernel.__name__}': key names {unknown} are not parameters")
        constexprs = {p.name for p in kernel.params if p.kind == "constexpr"}
        if "threads" not in names:
            constexprs.add("threads")  # the threadgroup size of a thread-level kernel: a launch keyword
        for c in configs:
            bad = sorted(set(c.constexprs) - constexprs)
            if bad:
                raise ValueError(f"@al.autotune on '{kernel.__name__}': {c} sets {bad}, which are not constexpr "
                                 "parameters (or threads=)")
        self.kernel = kernel
        self.key = tuple(key)
        self.tuner = Tuner(f"{kernel.fn.__module__}.{kernel.fn.__qualname__}", configs, reps=reps)
        self.__name__ = kernel.__name__
        self.__doc__ = kernel.__doc__

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.launch(grid, args, kwargs)

    def launch(self, grid, args, kwargs, target: str | None = None):
        from .. import config as alloy_config

        target = target or alloy_config.get().target
        first = self.tuner.configs_for(target)[0]
        bound = self.kernel.bind(args, {**first.constexprs, **kwargs})
        key = key_text([bound[name] for name in self.key])

        def run(config):
            return self.kernel.launch(grid, args, {**kwargs, **config.constexprs}, target)

        return run(self.tuner.choose(target, key, run))

    def best_config(self, target: str | None = None) -> dict:
        """{key: Config} chosen so far in this process."""
        return {k: c for (t, k), c in self.tuner._chosen.items() if target in (None, t)}


def autotune(configs: Sequence[Config], key: Sequence[str], reps: int = 5):
    """Decorate an @al.kernel so that each launch uses the fastest of `configs` for its `key`."""
    def wrap(kernel):
        return Autotuned(kernel, list(configs), key, reps)

    return wrap
