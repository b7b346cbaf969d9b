"""The "alloy" torch.compile backend: AOTAutograd with the core ATen decompositions, each forward and
backward graph compiled into a Plan of Alloy kernels."""
from __future__ import annotations

import itertools

import torch
from torch._decomp import core_aten_decompositions
from torch._dynamo.backends.common import aot_autograd

from .lowering import Report
from .plan import Plan
from .training import training_mode

_COUNTER = itertools.count()
_KEEP = (torch.ops.aten.gelu.default, torch.ops.aten.gelu_backward.default, torch.ops.aten._softmax.default,
         torch.ops.aten.native_layer_norm.default, torch.ops.aten.silu.default,
         torch.ops.aten.embedding_dense_backward.default, torch.ops.aten.nll_loss_forward.default,
         torch.ops.aten.nll_loss_backward.default, torch.ops.aten.select_backward.default,
         torch.ops.aten.slice_backward.default,
         # its decomposition returns the attention weights where the backward op expects the log-sum-exp
         torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default)


def decompositions() -> dict:
    """Core ATen decompositions, except the ops Alloy lowers whole (softmax, layer norm, GELU, SiLU,
    attention, the embedding gradient, the negative log-likelihood loss and its gradient, the gradients of
    select and slice)."""
    table = dict(core_aten_decompositions())
    for op in _KEEP:
        for name in op.overloadpacket.overloads():
            table.pop(getattr(op.overloadpacket, name), None)
    return table


class Session:
    """The plans a compile produced, for explain()."""

    def __init__(self) -> None:
        self.plans: list[Plan] = []

    def report(self) -> Report:
        total = Report()
        for plan in self.plans:
            total.add(plan.report)
        return total


_SESSIONS: list[Session] = []


def _compiler(kind: str):
    def compile_graph(gm: torch.fx.GraphModule, example_inputs):
        plan = Plan(gm, f"{kind}{next(_COUNTER)}")
        for session in _SESSIONS:
            session.plans.append(plan)
        return plan

    return compile_graph


def alloy(gm: torch.fx.GraphModule, example_inputs):
    """torch.compile(model, backend="alloy")."""
    extra = {}
    if training_mode():
        from torch._functorch.partitioners import min_cut_rematerialization_partition

        extra["partition_fn"] = min_cut_rematerialization_partition
    backend = aot_autograd(fw_compiler=_compiler("forward"), bw_compiler=_compiler("backward"),
                           inference_compiler=_compiler("inference"), decompositions=decompositions(), **extra)
    return backend(gm, example_inputs)
