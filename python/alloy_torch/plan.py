"""A compiled dispatch plan: one graph's steps, run in order over a flat list of value slots.

Lowering (grouping, code generation, kernel lookup) happens once per graph; a call binds its inputs to
the placeholder slots, runs each step and reads the output slots."""
from __future__ import annotations

import warnings

import torch.fx as fx

from .lowering import Lowering
from .steps import resolve

_WARNED: set = set()


class Plan:
    """A callable taking the graph's inputs as one list (AOTAutograd's boxed calling convention) or as
    positional arguments."""

    _boxed_call = True

    def __init__(self, gm: fx.GraphModule, name: str) -> None:
        lowering = Lowering(gm, name)
        self.steps = lowering.steps
        self.placeholders = lowering.placeholders
        self.output = lowering.output
        self.slot_count = lowering.slot_count
        self.report = lowering.report
        for op in sorted(self.report.fallback_ops):
            if op not in _WARNED:
                _WARNED.add(op)
                warnings.warn(f"alloy_torch: {op} has no Alloy lowering yet; it runs in eager torch inside the "
                              "compiled plan", stacklevel=2)

    def __call__(self, *args):
        boxed = len(args) == 1 and isinstance(args[0], list)  # graph inputs are tensors, never lists
        inputs = args[0] if boxed else args
        env = [None] * self.slot_count
        for slot, value in zip(self.placeholders, inputs):
            env[slot] = value
        if boxed:
            inputs.clear()  # AOTAutograd's boxed convention: the plan owns the inputs now
        for step in self.steps:
            step.run(env)
        return resolve(self.output, env)
