"""Loads the native runtime extension `alloy._runtime` and keeps its thread
pool sized from `alloy.config` (num_threads).

Re-exports: launch(fn_addr, args, g0, g1, g2, num_threads=0), dlopen(path),
dlsym(handle, name), set_num_threads(n), get_num_threads(). The entry point's
C ABI is in docs/cpu-abi.md.
"""

from __future__ import annotations

import importlib

from alloy import config

try:
    _runtime = importlib.import_module("alloy._runtime")  # the extension (not a Python layer)
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "alloy._runtime (the native runtime extension) is not built: "
        "run `make setup` (pip install --no-build-isolation -e .)"
    ) from exc

launch = _runtime.launch
dlopen = _runtime.dlopen
dlsym = _runtime.dlsym
set_num_threads = _runtime.set_num_threads
get_num_threads = _runtime.get_num_threads


def _apply(cfg: config.Config) -> None:
    if _runtime.get_num_threads() != cfg.num_threads:
        _runtime.set_num_threads(cfg.num_threads)


_apply(config.get())
config.subscribe(_apply)
