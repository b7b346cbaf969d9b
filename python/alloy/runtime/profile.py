"""`al.profile()`: what the runtime did inside a `with` block.

    with al.profile() as p:
        y = activate[grid](bias[grid](scale[grid](x, N=n), N=n), N=n)
        np.asarray(y)
    p.launches, p.fused, p.allocations   # 1, 2, 1

`launches` counts kernel launches that ran (a fused group is one), `fused` the kernels merged away
into another's launch, `allocations` the output buffers the runtime allocated.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass


@dataclass
class Profile:
    launches: int = 0
    fused: int = 0
    allocations: int = 0


_active = threading.local()


@contextlib.contextmanager
def profile():
    """Count launches, fused kernels and allocations of this thread while the block runs."""
    p = Profile()
    stack = getattr(_active, "stack", None)
    if stack is None:
        stack = _active.stack = []
    stack.append(p)
    try:
        yield p
    finally:
        stack.remove(p)


def count(launches: int = 0, fused: int = 0, allocations: int = 0) -> None:
    for p in getattr(_active, "stack", ()):
        p.launches += launches
        p.fused += fused
        p.allocations += allocations
