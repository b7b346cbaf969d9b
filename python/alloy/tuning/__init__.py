"""Tuning: `@al.autotune` picks a kernel's fastest constexpr configuration per key by measurement, and
remembers it per device (user tables under the cache directory, shipped tables in this package)."""
from .autotune import Autotuned, Config, Tuner, autotune  # noqa: F401
from .store import device_class, device_id  # noqa: F401
