"""ATen matmul, softmax and normalization nodes on Alloy's builtins (alloy.std)."""
from __future__ import annotations

import operator

import torch

import alloy as al
from alloy.std import flash_attention_backward

from . import patterns, row_kernels

FLOATS = (torch.float32, torch.float16, torch.bfloat16)

aten = torch.ops.aten


def _is_transposed(b: torch.Tensor) -> bool:
    return b.dim() >= 2 and b.stride(-2) == 1 and b.stride(-1) == b.shape[-2] and not b.is_contiguous()


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b; a transposed right-hand side (a linear layer's weight.t()) is read as stored."""
    if _is_transposed(b) and b.dim() == 2:
        return al.dot_transpose_rhs(a, b.transpose(-1, -2))
    return al.matmul(a, b)


def softmax(x: torch.Tensor, dim: int, half_to_float: bool) -> torch.Tensor:
    y = al.softmax(x, axis=dim)
    return y.float() if half_to_float else y


def layer_norm(x, normalized_shape, weight, bias, eps, stats_dtype):
    """aten.native_layer_norm on al.layernorm: (y, mean, rstd), the statistics shaped
    x.shape[:-k] + (1,) * k for k normalized dimensions."""
    k = len(normalized_shape)
    lead = tuple(x.shape[: x.dim() - k])
    y, mean, rstd = al.layernorm(x.reshape(lead + (-1,)), weight.reshape(-1), bias.reshape(-1), eps=eps,
                                 return_stats=True)
    stats = lead + (1,) * k
    return y.reshape(x.shape), mean.reshape(stats).to(stats_dtype), rstd.reshape(stats).to(stats_dtype)


def lowering(node):
    """(builtin function, its arguments) for a node Alloy's builtins compute, or None."""
    op, args = node.target, node.args
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor) or val.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return None
    if op in (aten.mm.default, aten.bmm.default) and not node.kwargs:
        return mm, args
    if op in (patterns.linear_epilogue, patterns.rms_norm, patterns.gated_linear, patterns.batched_linear,
              row_kernels.rotary):
        return op, args
    if op is aten._softmax.default and not node.kwargs:
        return softmax, args
    if op is aten._log_softmax.default and not node.kwargs:
        return row_kernels.log_softmax, args
    return None


def slice_backward_lowering(node):
    """The gradients of select and slice (zeros around the incoming gradient) on an Alloy kernel."""
    if node.kwargs or node.target not in (aten.select_backward.default, aten.slice_backward.default):
        return None
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor) or val.dtype not in FLOATS:
        return None
    if node.target is aten.select_backward.default:
        return row_kernels.select_backward, node.args
    return row_kernels.slice_backward, node.args


def dropout_lowering(node):
    """Dropout: torch's Bernoulli draw (eager's random stream), the masking on an Alloy kernel."""
    if node.target is not aten.native_dropout.default or node.kwargs:
        return None
    val = node.meta.get("val")
    if not isinstance(val, tuple) or val[0].dtype not in FLOATS:
        return None
    return row_kernels.dropout, node.args


def nll_loss_lowering(node):
    """The negative log-likelihood loss (cross-entropy after log-softmax) and its gradient on Alloy kernels."""
    if node.kwargs or node.target not in (aten.nll_loss_forward.default, aten.nll_loss_backward.default):
        return None
    logp = node.args[0 if node.target is aten.nll_loss_forward.default else 1].meta.get("val")
    if not isinstance(logp, torch.Tensor) or logp.dtype not in FLOATS or logp.dim() not in (1, 2):
        return None
    if node.target is aten.nll_loss_forward.default:
        return row_kernels.nll_loss, node.args
    return row_kernels.nll_loss_backward, node.args


def layer_norm_lowering(node):
    """al.layernorm, with its saved statistics, for a native_layer_norm with weight and bias."""
    if node.target is not aten.native_layer_norm.default or len(node.args) != 5 or node.kwargs:
        return None
    x, shape, weight, bias, eps = node.args
    if weight is None or bias is None or not isinstance(node.meta.get("val"), tuple):
        return None
    stats_dtype = node.meta["val"][1].dtype
    return (lambda *a: layer_norm(*a, stats_dtype)), node.args


def embedding_lowering(node):
    if node.target is aten.embedding_dense_backward.default and not node.kwargs:
        grad = node.args[0].meta.get("val")
        if isinstance(grad, torch.Tensor) and grad.dtype in FLOATS and not node.args[4]:
            return row_kernels.embedding_backward, node.args
        return None
    if node.target is not aten.embedding.default or node.kwargs:
        return None
    weight = node.args[0].meta.get("val")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.dtype not in FLOATS:
        return None
    return row_kernels.embedding, node.args


def _attention(q, k, v, dropout_p=0.0, is_causal=False, scale=None, with_lse=False):
    if with_lse:
        return al.attention(q, k, v, causal=is_causal, scale=scale, return_lse=True)
    return al.attention(q, k, v, causal=is_causal, scale=scale), None


def _attention_backward(grad_out, q, k, v, out, lse, dropout_p, is_causal, scale=None):
    return al.attention_backward(grad_out, q, k, v, out, lse, causal=is_causal, scale=scale)


def _sdpa_arguments(node, first_flag: int):
    """(dropout_p, is_causal, keyword arguments) of a CPU flash-attention node (forward or backward, its
    flags from position `first_flag`) Alloy's kernels compute, else None: no dropout, no mask, causal only
    for square scores (torch aligns the causal mask top-left, Alloy's kernels bottom-right)."""
    args = list(node.args[first_flag:]) + [0.0, False][len(node.args) - first_flag:]
    dropout, causal = args[0], args[1]
    kw = dict(node.kwargs)
    if dropout or kw.get("attn_mask") is not None or set(kw) - {"attn_mask", "scale"}:
        return None
    query = 1 if first_flag == 6 else 0  # the backward's arguments start with grad_out
    q, k = (a.meta.get("val") for a in node.args[query:query + 2])
    if q.dtype not in FLOATS or (causal and q.shape[-2] != k.shape[-2]):
        return None
    return dropout, causal, kw.get("scale")


def attention_lowering(node):
    """al.attention (grouped-query heads native) for CPU flash attention, with its log-sum-exp when a
    backward graph reads it; al.attention_backward for its gradient."""
    if node.target is aten._scaled_dot_product_flash_attention_for_cpu_backward.default:
        flags = _sdpa_arguments(node, 6)
        head_dim = node.args[1].meta["val"].shape[-1]
        if flags is None or not flash_attention_backward.runs_on_this_cpu(head_dim):  # eager: an open AVX2 bug
            return None
        dropout, causal, scale = flags
        return (lambda *a: _attention_backward(*a, scale=scale)), tuple(node.args[:6]) + (dropout, causal)
    if node.target is not aten._scaled_dot_product_flash_attention_for_cpu.default:
        return None
    flags = _sdpa_arguments(node, 3)
    if flags is None:
        return None
    dropout, causal, scale = flags
    with_lse = not all(u.target is operator.getitem and u.args[1] == 0 for u in node.users)
    return (lambda q, k, v, d, c: _attention(q, k, v, d, c, scale=scale, with_lse=with_lse)), \
        tuple(node.args[:3]) + (dropout, causal)


def _conv2d(x, weight, bias, stride, padding, dilation, transposed, output_padding, groups):
    if transposed:
        return al.conv_transpose2d(x, weight, bias, tuple(stride), tuple(padding), tuple(output_padding), groups,
                                   tuple(dilation))
    return al.conv2d(x, weight, bias, tuple(stride), tuple(padding), tuple(dilation), groups)


def convolution_lowering(node):
    """al.conv2d or al.conv_transpose2d (implicit GEMMs per group) for a 2-D aten.convolution."""
    if node.target is not aten.convolution.default or node.kwargs or len(node.args) != 9:
        return None
    x, weight = (a.meta.get("val") for a in node.args[:2])
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.dtype not in FLOATS or weight.dtype != x.dtype or \
            len(node.args[3]) != 2:
        return None
    return _conv2d, node.args


def _conv2d_backward(grad_output, x, weight, bias_sizes, stride, padding, dilation, transposed, output_padding,
                     groups, output_mask):
    need = tuple(bool(m) for m in output_mask)
    backward = al.conv_transpose2d_backward if transposed else al.conv2d_backward
    return backward(grad_output, x, weight, tuple(stride), tuple(padding), tuple(dilation), need, groups)


def convolution_backward_lowering(node):
    """al.conv2d_backward or al.conv_transpose2d_backward for the gradients of a 2-D convolution."""
    if node.target is not aten.convolution_backward.default or node.kwargs or len(node.args) != 11:
        return None
    grad, x, weight = (a.meta.get("val") for a in node.args[:3])
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.dtype not in FLOATS or \
            weight.dtype != x.dtype or grad.dtype != x.dtype or len(node.args[4]) != 2:
        return None
    return _conv2d_backward, node.args


def group_norm_lowering(node):
    """al.group_norm, with the mean and rstd a backward reads, for a native_group_norm with weight and bias."""
    if node.target is not aten.native_group_norm.default or node.kwargs or len(node.args) != 8:
        return None
    x, weight, bias = node.args[:3]
    val = node.meta.get("val")
    if weight is None or bias is None or not isinstance(val, tuple) or val[0].dtype not in FLOATS:
        return None
    stats_dtype = val[1].dtype

    def group_norm(x, weight, bias, n, c, spatial, groups, eps):
        y, mean, rstd = al.group_norm(x, groups, weight, bias, eps, return_stats=True)
        return y, mean.to(stats_dtype), rstd.to(stats_dtype)

    return group_norm, node.args


def _max_pool2d(x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return al.max_pool2d(x, list(kernel_size), list(stride) or None, _listed(padding), _listed(dilation), ceil_mode,
                         return_indices=True)


def _listed(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _max_pool2d_backward(grad_output, x, kernel_size, stride, padding, dilation, ceil_mode, indices):
    return al.max_pool2d_backward(grad_output, indices, tuple(x.shape))


def _avg_pool2d(x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    return al.avg_pool2d(x, list(kernel_size), list(stride) or None, _listed(padding), ceil_mode, count_include_pad,
                         divisor_override)


def _avg_pool2d_backward(grad_output, x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                         divisor_override):
    return al.avg_pool2d_backward(grad_output, tuple(x.shape), list(kernel_size), list(stride) or None,
                                  _listed(padding), ceil_mode, count_include_pad, divisor_override)


def _adaptive_avg_pool2d(x, output_size):
    return al.avg_pool2d(x, output_size=list(output_size))


def _adaptive_avg_pool2d_backward(grad_output, x):
    return al.avg_pool2d_backward(grad_output, tuple(x.shape), output_size=tuple(grad_output.shape[2:]))


_AVG_POOLS = {aten.avg_pool2d.default: _avg_pool2d, aten._adaptive_avg_pool2d.default: _adaptive_avg_pool2d}
_AVG_POOL_GRADS = {aten.avg_pool2d_backward.default: _avg_pool2d_backward,
                   aten._adaptive_avg_pool2d_backward.default: _adaptive_avg_pool2d_backward}


def pooling_lowering(node):
    """al.max_pool2d (with indices) and al.avg_pool2d (fixed or adaptive windows) for 4-D inputs, and their
    backwards."""
    if node.kwargs:
        return None
    val = node.meta.get("val")
    if node.target in _AVG_POOLS and isinstance(val, torch.Tensor) and val.dim() == 4 and val.dtype in FLOATS:
        return _AVG_POOLS[node.target], node.args
    if node.target in _AVG_POOL_GRADS and isinstance(val, torch.Tensor) and val.dim() == 4 and val.dtype in FLOATS:
        return _AVG_POOL_GRADS[node.target], node.args
    if node.target is aten.max_pool2d_with_indices.default:
        x = node.args[0].meta.get("val")
        if isinstance(x, torch.Tensor) and x.dim() == 4 and x.dtype in FLOATS:
            return _max_pool2d, node.args
    if node.target is aten.max_pool2d_with_indices_backward.default:
        grad = node.args[0].meta.get("val")
        if isinstance(grad, torch.Tensor) and grad.dim() == 4 and grad.dtype in FLOATS:
            return _max_pool2d_backward, node.args
    return None
