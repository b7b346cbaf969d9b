"""An ATen FX graph as a plan of steps: elementwise nodes grouped into fused Alloy kernels, reductions and
builtins on Alloy kernels, views as torch views (no copies), everything else eager torch.

Grouping: an elementwise node joins the group of one of its elementwise producers when it has the same
output shape and every other input it reads was computed before the group's first member, so the whole
group runs as one kernel at that point; a member's value leaves the group (is stored) only when a node
outside it reads it.
"""
from __future__ import annotations

import operator
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.fx as fx

from . import builtin_ops, patterns
from .pointwise import KERNEL_DTYPES, literal, expression
from .steps import BuiltinStep, ConcatStep, EagerStep, PointwiseStep, ReductionStep, Slot

aten = torch.ops.aten
VIEWS = {
    aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.permute.default,
    aten.transpose.int, aten.t.default, aten.expand.default, aten.squeeze.dim, aten.squeeze.dims,
    aten.squeeze.default, aten.unsqueeze.default, aten.slice.Tensor, aten.select.int, aten.as_strided.default,
    aten.detach.default, aten.alias.default, aten.split.Tensor, aten.split_with_sizes.default,
    aten.unbind.int, aten.chunk.default, aten.diagonal.default, operator.getitem,
}
RESHAPES = {aten.view.default, aten._unsafe_view.default}
REDUCTIONS = {aten.sum.dim_IntList: "sum", aten.mean.dim: "mean", aten.amax.default: "amax",
              aten.amin.default: "amin", aten.sum.default: "sum"}


@dataclass
class Report:
    """What the lowering did with each node of a graph."""

    alloy_nodes: int = 0
    view_nodes: int = 0
    fallback_nodes: int = 0
    fallback_ops: Counter = field(default_factory=Counter)
    kernels: int = 0  # Alloy kernels per call (fused groups count once)
    pattern_fusions: Counter = field(default_factory=Counter)  # subgraphs one builtin computes, by pattern

    def add(self, other: "Report") -> None:
        self.alloy_nodes += other.alloy_nodes
        self.view_nodes += other.view_nodes
        self.fallback_nodes += other.fallback_nodes
        self.fallback_ops.update(other.fallback_ops)
        self.kernels += other.kernels
        self.pattern_fusions.update(other.pattern_fusions)


def _val(node):
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _pointwise_ok(node) -> bool:
    val = _val(node)
    if not isinstance(val, torch.Tensor) or val.dtype not in KERNEL_DTYPES:
        return False
    for a in node.args:
        if isinstance(a, fx.Node):
            v = _val(a)
            if not isinstance(v, torch.Tensor) or v.dtype not in KERNEL_DTYPES:
                return False
        elif isinstance(a, (list, tuple, dict)):
            return False
    return expression(node, lambda a: "x" if isinstance(a, fx.Node) else ("1.0" if isinstance(a, (int, float)) else None)) is not None


def _constant(node) -> str | None:
    """The literal of a 0-dimensional constant (aten.scalar_tensor, aten.full with shape []), else None."""
    if node.op != "call_function":
        return None
    if node.target is aten.scalar_tensor.default:
        value = node.args[0]
    elif node.target is aten.full.default and list(node.args[0]) == []:
        value = node.args[1]
    else:
        return None
    val = _val(node)
    if not isinstance(val, torch.Tensor) or val.dtype not in KERNEL_DTYPES:
        return None
    return literal(value)


def split_addmm(graph: fx.Graph) -> None:
    """addmm(bias, a, b) as mm(a, b) + bias, so the bias add fuses with what follows (a GEMM epilogue)."""
    for node in list(graph.nodes):
        if node.target is aten.addmm.default and not node.kwargs:
            bias, a, b = node.args
            with graph.inserting_before(node):
                mm = graph.call_function(aten.mm.default, (a, b))
                mm.meta["val"] = node.meta.get("val")
                add = graph.call_function(aten.add.Tensor, (mm, bias))
                add.meta["val"] = node.meta.get("val")
            node.replace_all_uses_with(add)
            graph.erase_node(node)


class Lowering:
    """One graph's plan: its steps, the slots of its placeholders and outputs, and its report."""

    def __init__(self, gm: fx.GraphModule, name: str) -> None:
        split_addmm(gm.graph)
        fused_gates, merged_gates = patterns.fuse_gated_mlps(gm.graph)  # before the linears claim the gate GEMM
        fused_batches, merged_batches = patterns.fuse_batched_projections(gm.graph)
        fused_linears, merged = patterns.fuse_linear_epilogues(gm.graph)
        fused_norms, merged_norms = patterns.fuse_rms_norms(gm.graph)
        fused_rotary, merged_rotary = patterns.fuse_rotary(gm.graph)
        self.name = name
        nodes = list(gm.graph.nodes)
        self.index = {n: i for i, n in enumerate(nodes)}
        self.report = Report()
        # the nodes a pattern's builtin computes
        self.report.alloy_nodes += merged + merged_norms + merged_gates + merged_batches + merged_rotary
        if fused_gates:
            self.report.pattern_fusions["gated MLP as al.gated_linear"] += fused_gates
        if fused_batches:
            self.report.pattern_fusions["batched projections (QKV) as one al.linear"] += fused_batches
        if fused_rotary:
            self.report.pattern_fusions["rotary embedding as one kernel"] += fused_rotary
        if fused_linears:
            self.report.pattern_fusions["GEMM + bias/activation as al.linear"] += fused_linears
        if fused_norms:
            self.report.pattern_fusions["RMSNorm as al.rms_norm"] += fused_norms
        self.placeholders = [self.index[n] for n in nodes if n.op == "placeholder"]
        self.steps = []
        self.output = None
        self.slot_count = len(nodes)
        self._group_of: dict = {}
        self.constants = {n: _constant(n) for n in nodes if _constant(n) is not None}
        self._group(nodes)
        emitted = set()
        for node in nodes:
            if node.op in ("placeholder",):
                continue
            if node.op == "output":
                self.output = self._args(node.args[0])
                continue
            if node.op == "get_attr":
                value = getattr(gm, node.target)
                self.steps.append(EagerStep(lambda v=value: v, (), {}, self.index[node]))
                continue
            if node in self.constants and all(u in self._group_of for u in node.users):
                self.report.alloy_nodes += 1  # folded into the kernels that read it
                continue
            group = self._group_of.get(node)
            if group is not None:
                if id(group) not in emitted:
                    emitted.add(id(group))
                    self.steps.append(self._pointwise_step(group))
                continue
            self.steps.append(self._step(node))

    # ------------------------------------------------------------------ grouping
    def _group(self, nodes) -> None:
        for node in nodes:
            if node.op != "call_function" or not _pointwise_ok(node):
                continue
            shape = tuple(_val(node).shape)
            chosen = None
            for a in node.args:
                g = self._group_of.get(a)
                if g is None or tuple(_val(g[0]).shape) != shape:
                    continue
                start = self.index[g[0]]
                others = [b for b in node.args if isinstance(b, fx.Node) and self._group_of.get(b) is not g
                          and b not in self.constants]
                if all(self.index[b] < start for b in others):
                    chosen = g
                    break
            if chosen is None:
                chosen = []
            chosen.append(node)
            self._group_of[node] = chosen

    def _pointwise_step(self, group) -> PointwiseStep:
        members = set(group)
        inputs, names = [], {}

        def operand(a):
            if not isinstance(a, fx.Node):
                return literal(a)
            if a in members:
                return names[a]
            if a in self.constants:
                return self.constants[a]
            if a not in names:
                names[a] = f"x{len(inputs)}"
                inputs.append(Slot(self.index[a]))
            return names[a]

        body, results, layouts = [], [], []
        for k, node in enumerate(group):
            expr = expression(node, operand)
            names[node] = f"v{k}"
            body.append(f"v{k} = {expr}")
            if any(u not in members for u in node.users):
                results.append((f"v{k}", _val(node).dtype, self.index[node]))
                layouts.append(_val(node))
        self.report.alloy_nodes += len(group)
        self.report.kernels += 1
        name = f"fused_{'_'.join(dict.fromkeys(str(n.target).split('.')[-2] for n in group))}"[:60]
        return PointwiseStep(name, inputs, body, results, layouts)

    # ------------------------------------------------------------------ other nodes
    def _args(self, value):
        if isinstance(value, fx.Node):
            return Slot(self.index[value])
        if isinstance(value, (list, tuple)):
            return type(value)(self._args(v) for v in value)
        if isinstance(value, dict):
            return {k: self._args(v) for k, v in value.items()}
        return value

    def _step(self, node):
        out = self.index[node]
        if node.op == "call_function" and node.target in VIEWS:
            self.report.view_nodes += 1
            # an Alloy kernel's result may be laid out unlike eager's; the graph is functional, so a view
            # that its layout does not allow may copy (reshape stays a view whenever it can)
            target = aten.reshape.default if node.target in RESHAPES else node.target
            return EagerStep(target, self._args(node.args), self._args(node.kwargs), out)
        reduction = REDUCTIONS.get(node.target)
        val = _val(node)
        if node.target is aten.cat.default and isinstance(val, torch.Tensor) and val.dtype in KERNEL_DTYPES \
                and not node.kwargs and all(isinstance(a, fx.Node) and _val(a).dtype == val.dtype for a in node.args[0]):
            self.report.alloy_nodes += 1
            self.report.kernels += len(node.args[0])
            dim = node.args[1] if len(node.args) > 1 else 0
            return ConcatStep([self._args(a) for a in node.args[0]], dim, val, out)
        if reduction is not None and isinstance(val, torch.Tensor) and val.dtype in builtin_ops.FLOATS:
            args = list(node.args) + [None] * 3
            dims = args[1] if node.target is not aten.sum.default else None
            keepdim = bool(node.kwargs.get("keepdim", args[2] or False))
            dtype = node.kwargs.get("dtype")
            if set(node.kwargs) <= {"keepdim", "dtype"} and (dtype is None or dtype in builtin_ops.FLOATS):
                self.report.alloy_nodes += 1
                self.report.kernels += 1
                return ReductionStep(reduction, self._args(node.args[0]), dims, keepdim, dtype, out)
        lowered = (builtin_ops.lowering(node) or builtin_ops.layer_norm_lowering(node)
                   or builtin_ops.embedding_lowering(node) or builtin_ops.attention_lowering(node)
                   or builtin_ops.convolution_lowering(node) or builtin_ops.convolution_backward_lowering(node)
                   or builtin_ops.group_norm_lowering(node) or builtin_ops.pooling_lowering(node)
                   or builtin_ops.nll_loss_lowering(node) or builtin_ops.slice_backward_lowering(node)
                   or builtin_ops.dropout_lowering(node))
        if lowered is not None:
            fn, args = lowered
            self.report.alloy_nodes += 1
            self.report.kernels += 1
            return BuiltinStep(fn, self._args(args), out)
        self.report.fallback_nodes += 1
        self.report.fallback_ops[str(node.target)] += 1
        return EagerStep(node.target, self._args(node.args), self._args(node.kwargs), out)

