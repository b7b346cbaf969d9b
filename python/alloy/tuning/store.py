"""Where tuning results live: one JSON table per device.

    <cache_dir>/tuning/<device_id>.json      what this machine measured (`alloy tune`, first use of a key)
    alloy/tuning/tables/<device_class>.json  shipped with the package, for the machines we measured

A table maps a tuner's name to {key: {"config": {...}, "seconds": best time}}.
Lookups read the user table first, then the shipped one.
"""
from __future__ import annotations

import platform
import re
import threading
from functools import lru_cache
from pathlib import Path

from .. import config
from ..runtime.cache import write_atomic

SHIPPED = Path(__file__).with_name("tables")
_lock = threading.Lock()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


@lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@lru_cache(maxsize=None)
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_isa() -> str:
    """The CPU class code runs for: the configured cpu_target, or this machine's for "native"."""
    target = config.get().cpu_target
    if target != "native":
        return target
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "aarch64"
    return "x86-64-v4" if "avx512f" in _cpu_flags() else "x86-64-v3"


def device_class(target: str) -> str:
    """The shipped table for `target` on this machine: "cpu-x86-64-v3", "cpu-aarch64", "cuda-nvidia-h200", ..."""
    if target == "cpu":
        return f"cpu-{_cpu_isa()}"
    if target == "cuda":
        from ..runtime import cuda

        return f"cuda-{_slug(cuda.device_name())}" if cuda.available() else "cuda-unavailable"
    return target


def device_id(target: str) -> str:
    """This exact device: the class plus, for the CPU, the model and the thread count."""
    cls = device_class(target)
    if target == "cpu":
        return f"{cls}-{_slug(_cpu_model())}-{config.get().num_threads}t"
    return cls


def user_path(target: str) -> Path:
    """This device's user table."""
    return config.get().cache_dir / "tuning" / f"{device_id(target)}.json"


def _read(path: Path) -> dict:
    import json  # not at import: `import alloy` stays free of json

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("entries", {}) if isinstance(data, dict) else {}


def lookup(target: str, tuner: str, key: str) -> dict | None:
    """The stored entry ({"config": ..., "seconds": ...}) of `tuner` at `key`, user table first."""
    for path in (user_path(target), SHIPPED / f"{device_class(target)}.json"):
        entry = _read(path).get(tuner, {}).get(key)
        if isinstance(entry, dict) and isinstance(entry.get("config"), dict):
            return entry
    return None


def entries(target: str, tuner: str) -> dict:
    """Every stored key of `tuner` (shipped entries overridden by the user's)."""
    merged = dict(_read(SHIPPED / f"{device_class(target)}.json").get(tuner, {}))
    merged.update(_read(user_path(target)).get(tuner, {}))
    return merged


def record(target: str, tuner: str, key: str, chosen: dict, seconds: float) -> Path:
    """Store a measured winner in the user table; returns the table's path."""
    import json

    path = user_path(target)
    with _lock:
        table = _read(path)
        table.setdefault(tuner, {})[key] = {"config": chosen, "seconds": seconds}
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"device": device_id(target), "entries": table}, indent=1, sort_keys=True)
        write_atomic(path, body.encode())
    return path
