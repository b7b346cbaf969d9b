"""Pattern fusions on the ATen graph, before it is lowered: subgraphs that one Alloy builtin computes.

- A GEMM epilogue: `mm(a, b)`, then `+ bias` (a row vector) and/or an activation (GELU, tanh-GELU,
  SiLU, ReLU; also after the reshape a Linear on (..., K) inputs makes), each intermediate read by
  nothing else, becomes one `al.linear` call: the bias and the activation are applied to the GEMM's
  float32 accumulator before its single store. (The lowering has already split `addmm` into `mm`
  and an add.)
- A gated MLP: `act(x @ Wg.T) * (x @ Wu.T)` (SwiGLU with SiLU, GeGLU with GELU), both GEMMs on one x,
  becomes one `al.gated_linear` call: one kernel keeping both accumulators, x read once.
- RMSNorm: `x * rsqrt(mean(x^2, -1, keepdim) + eps)`, optionally converted back from a float32
  upcast and multiplied by a weight, becomes one `al.rms_norm` call (one kernel instead of three).
- Rotary embedding (Hugging Face's apply_rotary_pos_emb): `x * cos + cat(-x2, x1) * sin`, x1 and x2 the
  halves of x's last dimension, becomes one kernel (row_kernels.rotary) instead of a negation, two
  copies for the concatenation and the multiply-add.
- Batched projections: GEMMs of one input by transposed weights (a transformer's q, k and v
  projections; with their row biases when every one has one) become one `al.linear` over the
  weights stacked, and each projection a column slice of its result (a view).
"""
from __future__ import annotations

import weakref

import torch
import torch.fx as fx

import alloy as al

from . import row_kernels

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


def rms_norm(x: torch.Tensor, weight, eps: float, dtype: torch.dtype) -> torch.Tensor:
    """x * rsqrt(mean(x^2, -1) + eps) (* weight) as one al.rms_norm, returned in `dtype`."""
    if weight is None:
        weight = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
    y, _ = al.rms_norm(x, weight, eps=eps)
    return y if y.dtype == dtype else y.to(dtype)


CONVERTS = (torch.ops.prims.convert_element_type.default, aten._to_copy.default)


def _converted_from(node):
    """The float tensor a float32 conversion node converts, else None."""
    if node.op == "call_function" and node.target in CONVERTS and node.args and isinstance(node.args[0], fx.Node):
        src = _val(node.args[0])
        if isinstance(src, torch.Tensor) and src.dtype in FLOATS:
            return node.args[0]
    return None


def _other(node, known):
    """The operand of a two-operand mul besides `known` (either order), else None."""
    if node.op != "call_function" or node.target is not aten.mul.Tensor or len(node.args) != 2 or node.kwargs:
        return None
    a, b = node.args
    return b if a is known else a if b is known else None


def _rms_chain(pw):
    """(x, eps, the x * rsqrt(...) node, the nodes) of pow(x, 2) -> mean(-1, keepdim) -> + eps -> rsqrt -> * x."""
    x = pw.args[0]
    xv = _val(x)
    if pw.target is not aten.pow.Tensor_Scalar or pw.args[1] != 2 or not isinstance(xv, torch.Tensor) or \
            xv.dtype not in FLOATS or xv.dim() < 1:
        return None
    mean = _only_user(pw)
    if mean is None or mean.target is not aten.mean.dim or mean.args[0] is not pw or len(mean.args) < 3 or \
            not mean.args[2] or list(mean.args[1]) not in ([-1], [xv.dim() - 1]) or mean.kwargs:
        return None
    add = _only_user(mean)
    if add is None or add.target not in (aten.add.Scalar, aten.add.Tensor) or add.args[0] is not mean or \
            not isinstance(add.args[1], float) or add.kwargs:
        return None
    rsqrt = _only_user(add)
    if rsqrt is None or rsqrt.target is not aten.rsqrt.default:
        return None
    scaled = _only_user(rsqrt)
    if scaled is None or _other(scaled, rsqrt) is not x:
        return None
    return x, add.args[1], scaled, [pw, mean, add, rsqrt, scaled]


def fuse_rms_norms(graph: fx.Graph) -> tuple[int, int]:
    """Rewrite each RMSNorm subgraph (torch's nn.RMSNorm, Hugging Face's float32 upcast form, with or without a
    weight) into one al.rms_norm node: (subgraphs rewritten, nodes merged away)."""
    count = merged = 0
    for pw in list(graph.nodes):
        if pw.op != "call_function":
            continue
        chain = _rms_chain(pw)
        if chain is None:
            continue
        x, eps, last, fused = chain
        source = _converted_from(x) or x  # normalise the tensor before its float32 upcast
        user = _only_user(last)
        if user is not None and user.target in CONVERTS and user.args[0] is last:
            last, user = user, _only_user(user)
            fused.append(last)
        weight = _other(user, last) if user is not None else None
        dim = _val(x).shape[-1]
        if weight is not None and isinstance(_val(weight), torch.Tensor) and tuple(_val(weight).shape) == (dim,):
            last, user = user, _only_user(user)
            fused.append(last)
            if user is not None and user.target in CONVERTS and user.args[0] is last:  # back from the upcast
                last = user
                fused.append(user)
        else:
            weight = None
        weight_source = weight if weight is None else (_converted_from(weight) or weight)
        with graph.inserting_after(last):
            node = graph.call_function(rms_norm, (source, weight_source, eps, _val(last).dtype))
        node.meta["val"] = _val(last)
        last.replace_all_uses_with(node)
        for old in reversed(fused):
            graph.erase_node(old)
        for upcast in {x, weight} - {source, weight_source, None}:  # conversions nothing else reads
            if not upcast.users:
                graph.erase_node(upcast)
                fused.append(upcast)
        count += 1
        merged += len(fused) - 1
    return count, merged


def gated_linear(a: torch.Tensor, b_gate: torch.Tensor, b_up: torch.Tensor, activation: str) -> torch.Tensor:
    """activation(a @ b_gate) * (a @ b_up) as one al.gated_linear (the b are (K, N): weight.t())."""
    return al.gated_linear(a, b_gate.t(), b_up.t(), activation)


def _gate(node):
    """(activation name, its input) of a gate activation node (SiLU, GELU, tanh-GELU), else None."""
    if node.op != "call_function" or not node.args or not isinstance(node.args[0], fx.Node):
        return None
    name = _activation(node, node.args[0])
    return (name, node.args[0]) if name in ("silu", "gelu", "gelu_tanh") else None


def _gemm_behind(node):
    """(mm, the view of it) when `node` is a 2-D mm or a reshape of one, each read only once; else None."""
    view = None
    if node.op == "call_function" and node.target in RESHAPES and isinstance(node.args[0], fx.Node):
        view, node = node, node.args[0]
    if node.op != "call_function" or node.target is not aten.mm.default or node.kwargs or len(node.users) != 1:
        return None
    return node, view


def _same_rows(a, b) -> bool:
    """Whether two GEMM left-hand sides are one value: the same node, or equal reshapes of one."""
    if a is b:
        return True
    return all(n.op == "call_function" and n.target in RESHAPES for n in (a, b)) and a.target is b.target and \
        a.args[0] is b.args[0] and list(a.args[1]) == list(b.args[1])


def fuse_gated_mlps(graph: fx.Graph) -> tuple[int, int]:
    """Rewrite act(x @ Wg.T) * (x @ Wu.T) (SwiGLU, GeGLU; the reshapes of Linear layers on (..., K) inputs
    included) into one al.gated_linear node: (subgraphs rewritten, nodes merged away)."""
    count = merged = 0
    for mul in list(graph.nodes):
        if mul.op != "call_function" or mul.target is not aten.mul.Tensor or len(mul.args) != 2 or mul.kwargs or \
                not all(isinstance(a, fx.Node) for a in mul.args):
            continue
        for gate_node, up_node in (mul.args, tuple(reversed(mul.args))):
            gate = _gate(gate_node)
            if gate is None or len(gate_node.users) != 1 or len(up_node.users) != 1:
                continue
            g, u = _gemm_behind(gate[1]), _gemm_behind(up_node)
            if g is None or u is None or len(gate[1].users) != 1 or (g[1] is None) != (u[1] is None):
                continue
            (mm_g, view_g), (mm_u, view_u) = g, u
            gv, uv = _val(mm_g), _val(mm_u)
            if gv.dtype not in FLOATS or gv.dtype != uv.dtype or tuple(gv.shape) != tuple(uv.shape) or \
                    not _same_rows(mm_g.args[0], mm_u.args[0]) or \
                    (view_g is not None and list(view_g.args[1]) != list(view_u.args[1])):
                continue
            with graph.inserting_after(mul):
                node = graph.call_function(gated_linear, (mm_g.args[0], mm_g.args[1], mm_u.args[1], gate[0]))
            node.meta["val"] = gv
            result = node
            if view_g is not None:
                with graph.inserting_after(node):
                    result = graph.call_function(view_g.target, (node, *view_g.args[1:]), dict(view_g.kwargs))
            result.meta["val"] = _val(mul)
            mul.replace_all_uses_with(result)
            lhs_u = mm_u.args[0]
            fused = list(dict.fromkeys(n for n in (mul, gate_node, up_node, view_g, mm_g, view_u, mm_u) if n is not None))
            for old in fused:
                graph.erase_node(old)
            if lhs_u is not mm_g.args[0] and not lhs_u.users:  # the up projection's own reshape of x
                graph.erase_node(lhs_u)
                fused.append(lhs_u)
            count += 1
            merged += len(fused) - 1
            break
    return count, merged


_STACKED: dict = {}  # the weights (and biases) of batched projections, stacked: see stacked_weights
MAX_STACKED = 64


def stacked_weights(weights, biases):
    """The projections' weights stacked into one (sum N, K) matrix and their biases into one vector, made once
    and reused while the same tensors are unchanged (their versions count in-place updates, so a training
    step's parameters are stacked anew)."""
    tensors = tuple(weights) + tuple(biases or ())
    key = tuple(id(t) for t in tensors)
    versions = tuple(t._version for t in tensors)
    entry = _STACKED.get(key)
    if entry is None or entry[1] != versions or any(ref() is not t for ref, t in zip(entry[0], tensors)):
        stacked = (torch.cat(list(weights), 0), torch.cat(list(biases), 0) if biases else None)
        if len(_STACKED) >= MAX_STACKED:
            _STACKED.pop(next(iter(_STACKED)))
        entry = _STACKED[key] = (tuple(weakref.ref(t) for t in tensors), versions, stacked)
    return entry[2]


def batched_linear(x: torch.Tensor, weights, biases) -> torch.Tensor:
    """x @ cat(weights).T (+ cat(biases)) as one al.linear: the projections' outputs side by side."""
    weight, bias = stacked_weights(weights, biases)
    return al.linear(x, weight, bias)


def _weight_behind(b):
    """The (N, K) weight node that a GEMM's right-hand side transposes (t, or permute [1, 0]), else None."""
    if b.op != "call_function" or not isinstance(b.args[0], fx.Node):
        return None
    if b.target is aten.t.default or (b.target is aten.permute.default and list(b.args[1]) == [1, 0]):
        val = _val(b.args[0])
        return b.args[0] if isinstance(val, torch.Tensor) and val.dim() == 2 else None
    return None


def _rows_key(lhs):
    """One key for GEMM left-hand sides that are one value: the node, or what a reshape reshapes and how."""
    if lhs.op == "call_function" and lhs.target in RESHAPES and isinstance(lhs.args[0], fx.Node):
        return lhs.args[0], lhs.target, tuple(lhs.args[1])
    return lhs


def fuse_batched_projections(graph: fx.Graph) -> tuple[int, int]:
    """Rewrite GEMMs of one input by transposed weights into one batched_linear node and column slices of it:
    (groups rewritten, nodes merged away)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    groups: dict = {}
    for mm in graph.nodes:
        if mm.op != "call_function" or mm.target is not aten.mm.default or mm.kwargs:
            continue
        val, weight = _val(mm), _weight_behind(mm.args[1])
        if weight is None or not isinstance(val, torch.Tensor) or val.dtype not in FLOATS or \
                _val(weight).dtype != val.dtype:
            continue
        groups.setdefault(_rows_key(mm.args[0]), []).append((mm, weight))
    count = merged = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        first = min(order[mm] for mm, _ in members)
        adds = [_only_user(mm) for mm, _ in members]
        biases = [_row_bias(add, mm) if add is not None else None for add, (mm, _) in zip(adds, members)]
        with_bias = all(b is not None for b in biases)
        inputs = [w for _, w in members] + (biases if with_bias else [])
        if any(order[n] > first for n in inputs):  # every weight and bias must exist before the first GEMM
            continue
        lhs = min(members, key=lambda m: order[m[0]])[0].args[0]
        anchor = min((mm for mm, _ in members), key=order.get)
        with graph.inserting_before(anchor):
            node = graph.call_function(batched_linear, (lhs, tuple(w for _, w in members),
                                                        tuple(biases) if with_bias else None))
        widths = [_val(mm).shape[1] for mm, _ in members]
        node.meta["val"] = torch.empty((_val(anchor).shape[0], sum(widths)), dtype=_val(anchor).dtype, device="meta")
        start = 0
        for (mm, _), add, width in zip(members, adds, widths):
            last = add if with_bias else mm
            with graph.inserting_before(anchor):
                part = graph.call_function(aten.slice.Tensor, (node, 1, start, start + width))
            part.meta["val"] = _val(last)
            last.replace_all_uses_with(part)
            leftovers = [mm.args[1], mm.args[0]]  # the weight's transpose, x's reshape
            if with_bias:
                graph.erase_node(add)
            graph.erase_node(mm)
            for old in leftovers:
                if not old.users and old is not lhs and old.op == "call_function":
                    graph.erase_node(old)
            start += width
        count += 1
        merged += len(members) * (2 if with_bias else 1) - 1
    return count, merged


def _slice_of(node, x, dim: int, start: int, stop: int) -> bool:
    """Whether node is x[..., start:stop] along its last dimension `dim` (stop may be any value >= the end)."""
    if node.op != "call_function" or node.target is not aten.slice.Tensor or node.args[0] is not x or node.kwargs:
        return False
    args = list(node.args) + [0, None, 1][len(node.args) - 2:]
    size = _val(x).shape[-1]
    end = size if args[3] is None else min(args[3], size)
    return args[1] in (dim, -1) and args[2] == start and end == stop and args[4] == 1


def _rotate_half_of(cat):
    """x when `cat` is cat([-x[..., half:], x[..., :half]], -1) and read only once, else None."""
    if cat.op != "call_function" or cat.target is not aten.cat.default or cat.kwargs or len(cat.users) != 1:
        return None
    parts = cat.args[0]
    dim = cat.args[1] if len(cat.args) > 1 else 0
    if len(parts) != 2 or parts[0].target is not aten.neg.default or len(parts[0].users) != 1:
        return None
    x = parts[1].args[0] if parts[1].op == "call_function" and parts[1].args else None
    val = _val(x)
    if not isinstance(val, torch.Tensor) or val.dtype not in FLOATS or val.dim() < 2 or val.dim() > 4 or \
            val.shape[-1] % 2 or dim not in (-1, val.dim() - 1):
        return None
    half = val.shape[-1] // 2
    last = val.dim() - 1
    if not (_slice_of(parts[1], x, last, 0, half) and _slice_of(parts[0].args[0], x, last, half, 2 * half)) or \
            len(parts[1].users) != 1 or len(parts[0].args[0].users) != 1:
        return None
    return x


def fuse_rotary(graph: fx.Graph) -> tuple[int, int]:
    """Rewrite x * cos + rotate_half(x) * sin into one row_kernels.rotary node: (subgraphs rewritten, nodes
    merged away)."""
    count = merged = 0
    for cat in list(graph.nodes):
        x = _rotate_half_of(cat)
        if x is None:
            continue
        mul_sin = _only_user(cat)
        sin = _other(mul_sin, cat)
        add = _only_user(mul_sin) if sin is not None else None
        if add is None or add.target is not aten.add.Tensor or len(add.args) != 2 or add.kwargs:
            continue
        mul_cos = add.args[0] if add.args[1] is mul_sin else add.args[1]
        cos = _other(mul_cos, x) if len(mul_cos.users) == 1 else None
        shape = tuple(_val(x).shape)
        if cos is None or tuple(_val(add).shape) != shape or \
                not all(isinstance(_val(t), torch.Tensor) and _val(t).dim() <= len(shape) for t in (cos, sin)):
            continue
        with graph.inserting_after(add):
            node = graph.call_function(row_kernels.rotary, (x, cos, sin, _val(add).dtype))
        node.meta["val"] = _val(add)
        add.replace_all_uses_with(node)
        neg = cat.args[0][0]
        fused = [add, mul_sin, mul_cos, cat, neg, neg.args[0], cat.args[0][1]]
        for old in fused:
            graph.erase_node(old)
        count += 1
        merged += len(fused) - 1
    return count, merged
