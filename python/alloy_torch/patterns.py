"""Pattern fusions on the ATen graph, before it is lowered: subgraphs that one Alloy builtin computes.

- A GEMM epilogue: `mm(a, b)`, then `+ bias` (a row vector) and/or an activation (GELU, tanh-GELU,
  SiLU, ReLU; after the reshape a Linear on (..., K) inputs makes), each intermediate read by nothing
  else, becomes one `al.linear` call: the bias and the
  activation are applied to the GEMM's float32 accumulator before its single store. (The lowering has
  already split `addmm` into `mm` and an add.)
"""
from __future__ import annotations

import torch
import torch.fx as fx

import alloy as al

aten = torch.ops.aten
FLOATS = (torch.float32, torch.float16, torch.bfloat16)
RESHAPES = (aten.view.default, aten._unsafe_view.default, aten.reshape.default)


def linear_epilogue(a: torch.Tensor, b: torch.Tensor, bias, activation):
    """activation(a @ b + bias) as one al.linear (b is the (K, N) right-hand side: weight.t())."""
    return al.linear(a, b.t(), bias, activation)


def _val(node):
    return node.meta.get("val") if isinstance(node, fx.Node) else None


def _activation(node, x) -> str | None:
    """The al.linear activation that `node` applies to `x` alone, else None."""
    if node.op != "call_function" or not node.args or node.args[0] is not x:
        return None
    if node.target in (aten.relu.default, aten.silu.default) and len(node.args) == 1 and not node.kwargs:
        return "relu" if node.target is aten.relu.default else "silu"
    if node.target is aten.gelu.default and len(node.args) <= 2 and set(node.kwargs) <= {"approximate"}:
        mode = node.args[1] if len(node.args) == 2 else node.kwargs.get("approximate", "none")
        return {"none": "gelu", "tanh": "gelu_tanh"}.get(mode)
    return None


def _only_user(node):
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _row_bias(add, mm):
    """The bias of `add` = mm + bias (either order) when it is a row vector of mm's columns, else None."""
    if add.target is not aten.add.Tensor or len(add.args) != 2 or add.kwargs:
        return None
    bias = add.args[1] if add.args[0] is mm else add.args[0] if add.args[1] is mm else None
    val, out = _val(bias), _val(mm)
    if not isinstance(val, torch.Tensor) or val.dtype != out.dtype or tuple(val.shape) != (out.shape[-1],):
        return None
    return bias


def fuse_linear_epilogues(graph: fx.Graph) -> tuple[int, int]:
    """Rewrite each GEMM-with-epilogue subgraph into one linear_epilogue node: (subgraphs rewritten, nodes
    merged away)."""
    count = merged = 0
    for mm in list(graph.nodes):
        if mm.op != "call_function" or mm.target is not aten.mm.default or mm.kwargs:
            continue
        out = _val(mm)
        if not isinstance(out, torch.Tensor) or out.dtype not in FLOATS or out.dim() != 2:
            continue
        fused, last, bias, activation = [mm], mm, None, None
        user = _only_user(mm)
        if user is not None and _row_bias(user, mm) is not None:
            bias, last = _row_bias(user, mm), user
            fused.append(user)
            user = _only_user(user)
        view = None  # a Linear on (..., K) inputs: the GEMM's rows are reshaped back before the activation
        if user is not None and user.target in RESHAPES and user.args[0] is last and _only_user(user) is not None \
                and _activation(_only_user(user), user) is not None:
            view, user = user, _only_user(user)
        if user is not None and _activation(user, view or last) is not None:
            activation = _activation(user, view or last)
            fused += [view, user] if view is not None else [user]
            gemm_val, last = _val(last), user
        else:
            view, gemm_val = None, _val(last)
        if len(fused) == 1:
            continue
        a, b = mm.args
        with graph.inserting_after(last):
            node = graph.call_function(linear_epilogue, (a, b, bias, activation))
        result = node
        if view is not None:
            with graph.inserting_after(node):
                result = graph.call_function(view.target, (node, *view.args[1:]), dict(view.kwargs))
        node.meta["val"] = gemm_val
        result.meta["val"] = _val(last)
        last.replace_all_uses_with(result)
        for old in reversed(fused):
            graph.erase_node(old)
        count += 1
        merged += len(fused) - 1
    return count, merged
