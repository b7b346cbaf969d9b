"""Captured decode steps: the launches of one token's forward pass, replayed for the next tokens.

The first decode step on a cache runs normally while ``StepGraph`` records every prepared launch
(each call site its own, with its own output buffer) and the position-dependent inputs: the token
id buffer, the rotary tables, the ``start`` arguments of the cache store and attention. A replay
writes those, then makes the recorded native calls back to back — no Python model code, no
argument packing. A graph is valid while its cache's buffers stay where they were
(``DeviceKV.generation``); when the cache grows, the next step captures anew.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

import alloy as al


class StepGraph:
    """The recorded launches of one decode step and the patches that move it to another token."""

    def __init__(self, generations: tuple[int, ...]) -> None:
        self.generations = generations
        self.launches: list = []                          # PreparedLaunch objects, in call order
        self.patches: list[Callable[[int, int], None]] = []  # patch(token, position)
        self.output: np.ndarray | None = None
        self._sequence: al.LaunchSequence | None = None

    def record(self, launch) -> None:
        self.launches.append(launch)

    def finish(self, output: np.ndarray) -> None:
        """Freeze the recording: ``output`` is the logits buffer a replay fills."""
        self.output = output
        self._sequence = al.LaunchSequence(self.launches)

    def replay(self, token: int, position: int) -> np.ndarray:
        for patch in self.patches:
            patch(token, position)
        self._sequence.run()
        return self.output
