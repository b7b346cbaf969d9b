"""Captured decode steps: the launches of one token's forward pass, replayed for the next tokens.

The first decode step on a cache (or on a batch of caches, one token each) runs normally while
``StepGraph`` records every prepared launch (each call site its own, with its own output buffer)
and the position-dependent inputs: the token id buffer, the rotary tables, the ``start``
arguments of the cache store and attention. A replay writes those for the new tokens and for
positions ``delta`` past the captured ones, then makes the recorded native calls back to back —
no Python model code, no argument packing. A graph is valid while its caches' buffers stay
where they were (``DeviceKV.generation``) and, for a batch, while its caches advance together;
otherwise the next step captures anew.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

import alloy as al


class StepGraph:
    """The recorded launches of one decode step and the patches that move it to another token."""

    def __init__(self, generations: tuple[int, ...], lengths: np.ndarray) -> None:
        self.generations = generations
        self.lengths = lengths                            # each cache's length when captured
        self.launches: list = []                          # PreparedLaunch objects, in call order
        self.patches: list[Callable[[np.ndarray, int], None]] = []  # patch(tokens, delta)
        self.output: np.ndarray | None = None
        self._sequence: al.LaunchSequence | None = None

    def record(self, launch) -> None:
        self.launches.append(launch)

    def finish(self, output: np.ndarray) -> None:
        """Freeze the recording: ``output`` is the logits buffer a replay fills."""
        self.output = output
        self._sequence = al.LaunchSequence(self.launches)

    def replay(self, tokens: np.ndarray, delta: int) -> np.ndarray:
        """Run the step for ``tokens`` (int32, one per cache) at positions ``delta`` past the captured ones."""
        for patch in self.patches:
            patch(tokens, delta)
        self._sequence.run()
        return self.output
