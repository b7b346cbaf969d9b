"""Alloy kernels for ATen ops with no builtin of the same contract: log-softmax, embedding lookup and its
weight gradient, the negative log-likelihood loss and its gradient, the gradients of select and slice,
dropout's masking, rotary embedding with given cos/sin tables."""
from __future__ import annotations

import math

import torch

import alloy as al

from .steps import flat

BLOCK = 1024


@al.kernel
def log_softmax_rows(X, Y: al.output, n, BLOCK: al.constexpr):
    row = al.program_id(0)
    base = row * n
    m = al.full((BLOCK,), -float("inf"), al.float32)
    s = al.zeros((BLOCK,), al.float32)
    for start in range(0, n, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(X + base + cols, mask=cols < n, other=-float("inf")).to(al.float32)
        m_new = al.maximum(m, x)
        shift = al.where(m_new == -float("inf"), 0.0, m_new)
        s = s * al.exp(m - shift) + al.exp(x - shift)
        m = m_new
    row_max = al.max(m, axis=0)
    lse = row_max + al.log(al.sum(s * al.exp(m - row_max), axis=0))
    for start in range(0, n, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(X + base + cols, mask=cols < n, other=0.0).to(al.float32)
        al.store(Y + base + cols, (x - lse).to(Y.dtype), mask=cols < n)


@al.kernel
def gather_rows(Table, Index, Y: al.output, dim, BLOCK: al.constexpr):
    row = al.program_id(0)
    cols = al.program_id(1) * BLOCK + al.arange(0, BLOCK)
    idx = al.load(Index + row).to(al.int64)
    al.store(Y + row * dim + cols, al.load(Table + idx * dim + cols, mask=cols < dim), mask=cols < dim)


@al.kernel
def scatter_add_rows(Grad, Index, Out, dim, padding_idx, BLOCK: al.constexpr):
    row = al.program_id(0)
    cols = al.program_id(1) * BLOCK + al.arange(0, BLOCK)
    idx = al.load(Index + row).to(al.int64)
    g = al.load(Grad + row * dim + cols, mask=cols < dim, other=0.0).to(al.float32)
    al.atomic_add(Out + idx * dim + cols, g, mask=(cols < dim) & (idx != padding_idx))


@al.kernel
def nll_loss_rows(LogP, Target, Weight, Out: al.output, Total: al.output, n_rows, n_cols, ignore_index,
                  REDUCE: al.constexpr, WEIGHTED: al.constexpr, BLOCK: al.constexpr):
    """One program: each row's -LogP[row, target] (times the class weight), stored per row (REDUCE 0) or
    summed (2) or averaged over the weights of the rows counted (1); Total gets that weight sum."""
    losses = al.zeros((BLOCK,), al.float32)
    weights = al.zeros((BLOCK,), al.float32)
    for start in range(0, n_rows, BLOCK):
        rows = start + al.arange(0, BLOCK)
        inside = rows < n_rows
        t = al.load(Target + rows, mask=inside, other=0).to(al.int64)
        valid = inside & (t != ignore_index)
        w = al.where(valid, 1.0, 0.0)
        if WEIGHTED:
            w = al.load(Weight + t, mask=valid, other=0.0).to(al.float32)
        loss = -al.load(LogP + rows.to(al.int64) * n_cols + t, mask=valid, other=0.0).to(al.float32) * w
        if REDUCE == 0:
            al.store(Out + rows, loss.to(Out.dtype), mask=inside)
        losses += loss
        weights += w
    total = al.sum(weights, axis=0)
    if REDUCE == 1:
        al.store(Out + 0, (al.sum(losses, axis=0) / total).to(Out.dtype))
    if REDUCE == 2:
        al.store(Out + 0, al.sum(losses, axis=0).to(Out.dtype))
    al.store(Total + 0, al.where(REDUCE == 0, 0.0, total).to(Total.dtype))


@al.kernel
def nll_loss_grad_rows(Grad, Target, Weight, Total, dX: al.output, n_cols, ignore_index, REDUCE: al.constexpr,
                       WEIGHTED: al.constexpr, BLOCK: al.constexpr):
    """One program a row: the row of the loss's gradient, -grad * weight [/ total weight] at the target column
    and 0 elsewhere."""
    row = al.program_id(0)
    t = al.load(Target + row).to(al.int64)
    valid = t != ignore_index
    g = al.load(Grad + 0).to(al.float32)
    if REDUCE == 0:
        g = al.load(Grad + row).to(al.float32)
    if REDUCE == 1:
        g = g / al.load(Total + 0).to(al.float32)
    w = 1.0
    if WEIGHTED:
        w = al.load(Weight + t, mask=valid, other=0.0).to(al.float32)
    value = al.where(valid, -g * w, 0.0)
    base = row.to(al.int64) * n_cols
    for start in range(0, n_cols, BLOCK):
        cols = start + al.arange(0, BLOCK)
        al.store(dX + base + cols, al.where(cols == t, value, 0.0).to(dX.dtype), mask=cols < n_cols)


@al.kernel
def scatter_slice_rows(G, Y: al.output, n, inner, start, step, count, BLOCK: al.constexpr):
    """Y viewed as (outer, n, inner): rows j = start + step * m (m < count) of axis n take G's row m, the
    others are zero (G is (outer, count, inner))."""
    row = al.program_id(0)
    outer_index = row // n
    j = row % n
    m = (j - start) // step
    inside = (j >= start) & ((j - start) % step == 0) & (m < count)
    cols = al.program_id(1) * BLOCK + al.arange(0, BLOCK)
    source = G + (outer_index * count + m).to(al.int64) * inner + cols
    value = al.load(source, mask=(cols < inner) & inside, other=0.0)
    al.store(Y + row.to(al.int64) * inner + cols, value, mask=cols < inner)


@al.kernel
def dropout_mask(X, Noise, Y: al.output, Keep: al.output, n, scale, BLOCK: al.constexpr):
    """Y = X * Noise * scale and Keep = Noise != 0 for a 0/1 Noise (torch's Bernoulli draw)."""
    i = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    inside = i < n
    noise = al.load(Noise + i, mask=inside, other=0.0).to(al.float32)
    x = al.load(X + i, mask=inside, other=0.0).to(al.float32)
    al.store(Y + i, (x * noise * scale).to(Y.dtype), mask=inside)
    al.store(Keep + i, noise != 0.0, mask=inside)


@al.kernel
def rotate_half_rows(X, Cos, Sin, Y: al.output, B, C, x0, x1, x2, c0, c1, c2, s0, s1, s2, HALF: al.constexpr,
                     BLOCK: al.constexpr):
    """One row of x (its leading dims (A, B, C) with the given strides; features contiguous):
    y = x * cos + rotate_half(x) * sin, rotate_half(x) = (-x[half:], x[:half])."""
    r = al.program_id(0)
    a, b, c = r // (B * C), (r // C) % B, r % C
    i = al.arange(0, BLOCK)
    m = i < HALF
    xp = X + a.to(al.int64) * x0 + b * x1 + c * x2
    cp = Cos + a.to(al.int64) * c0 + b * c1 + c * c2
    sp = Sin + a.to(al.int64) * s0 + b * s1 + c * s2
    lo = al.load(xp + i, mask=m, other=0.0).to(al.float32)
    hi = al.load(xp + HALF + i, mask=m, other=0.0).to(al.float32)
    y_lo = lo * al.load(cp + i, mask=m, other=0.0).to(al.float32) - hi * al.load(sp + i, mask=m, other=0.0).to(al.float32)
    y_hi = hi * al.load(cp + HALF + i, mask=m, other=0.0).to(al.float32) + \
        lo * al.load(sp + HALF + i, mask=m, other=0.0).to(al.float32)
    out = Y + r.to(al.int64) * (2 * HALF)
    al.store(out + i, y_lo.to(Y.dtype), mask=m)
    al.store(out + HALF + i, y_hi.to(Y.dtype), mask=m)


def _target(t: torch.Tensor) -> str:
    return "cuda" if t.is_cuda else "cpu"


def log_softmax(x, dim, half_to_float):
    """aten._log_softmax: x - logsumexp(x) along `dim`, streamed (online maximum) in float32."""
    moved = x.movedim(dim, -1).contiguous()
    n = moved.shape[-1]
    rows = moved.numel() // n if n else 0
    y = torch.empty(moved.shape, dtype=torch.float32 if half_to_float else x.dtype, device=x.device)
    if rows and n:
        log_softmax_rows.launch(rows, (moved.reshape(-1), n), {"Y": y.reshape(-1), "BLOCK": 256}, _target(x))
    return y.movedim(-1, dim)


def embedding(weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    """weight[indices] (aten.embedding's forward)."""
    dim = weight.shape[1]
    flat_idx = indices.contiguous().reshape(-1)
    y = torch.empty((flat_idx.numel(), dim), dtype=weight.dtype, device=weight.device)
    if flat_idx.numel() and dim:
        gather_rows.launch((flat_idx.numel(), al.cdiv(dim, BLOCK)), (weight.contiguous().reshape(-1), flat_idx, dim),
                           {"Y": y.reshape(-1), "BLOCK": BLOCK}, _target(weight))
    return y.reshape(tuple(indices.shape) + (dim,))


def embedding_backward(grad, indices, num_weights, padding_idx, scale_grad_by_freq):
    """The weight gradient of an embedding: each index's gradient row added into its table row (float32
    atomics), rows of `padding_idx` skipped (aten.embedding_dense_backward)."""
    dim = grad.shape[-1]
    flat_idx = indices.contiguous().reshape(-1)
    out = torch.zeros((num_weights, dim), dtype=torch.float32, device=grad.device)
    if flat_idx.numel() and dim:
        scatter_add_rows.launch((flat_idx.numel(), al.cdiv(dim, BLOCK)),
                                (grad.contiguous().reshape(-1), flat_idx, out.reshape(-1), dim, int(padding_idx)),
                                {"BLOCK": BLOCK}, _target(grad))
    return out if grad.dtype is torch.float32 else out.to(grad.dtype)


def _class_rows(logp, target, weight):
    """(logp as (rows, classes), target as (rows,), the weights or logp standing in, whether weighted)."""
    rows2d = logp.reshape(1, -1) if logp.dim() == 1 else logp.contiguous()
    flat_target = target.reshape(-1).contiguous()
    weighted = weight is not None
    return rows2d, flat_target, (weight.contiguous() if weighted else rows2d), weighted


def nll_loss(logp, target, weight, reduction, ignore_index):
    """aten.nll_loss_forward: (loss, total weight) for log-probabilities (N, C) or (C,) and class targets."""
    rows2d, flat_target, weights, weighted = _class_rows(logp, target, weight)
    n_rows, n_cols = rows2d.shape
    out = torch.empty((n_rows,) if reduction == 0 else (1,), dtype=logp.dtype, device=logp.device)
    total = torch.empty((1,), dtype=logp.dtype, device=logp.device)
    nll_loss_rows.launch(1, (rows2d.reshape(-1), flat_target, weights, n_rows, n_cols, int(ignore_index)),
                         {"Out": out, "Total": total, "REDUCE": int(reduction), "WEIGHTED": weighted, "BLOCK": 256},
                         _target(logp))
    return (out.reshape(target.shape) if reduction == 0 else out.reshape(())), total.reshape(())


def nll_loss_backward(grad, logp, target, weight, reduction, ignore_index, total_weight):
    """aten.nll_loss_backward: the gradient of nll_loss with respect to the log-probabilities."""
    rows2d, flat_target, weights, weighted = _class_rows(logp, target, weight)
    n_rows, n_cols = rows2d.shape
    dx = torch.empty((n_rows, n_cols), dtype=logp.dtype, device=logp.device)
    if n_rows and n_cols:
        nll_loss_grad_rows.launch(n_rows, (grad.contiguous().reshape(-1), flat_target, weights,
                                           total_weight.reshape(1), n_cols, int(ignore_index)),
                                  {"dX": dx.reshape(-1), "REDUCE": int(reduction), "WEIGHTED": weighted,
                                   "BLOCK": BLOCK}, _target(logp))
    return dx.reshape(logp.shape)


def _scatter_slice(grad, sizes, dim, start, step):
    """A zero tensor of `sizes` with grad along `dim` at start, start + step, ... (grad has that axis)."""
    sizes = [int(v) for v in sizes]
    dim = dim % len(sizes)
    n, inner = sizes[dim], math.prod(sizes[dim + 1:])
    count = grad.shape[dim] if grad.dim() == len(sizes) else 1
    y = torch.empty(sizes, dtype=grad.dtype, device=grad.device)
    rows = math.prod(sizes[:dim + 1])
    if rows and inner:
        scatter_slice_rows.launch((rows, al.cdiv(inner, BLOCK)), (grad.contiguous().reshape(-1), n, inner,
                                  int(start), int(step), int(count)), {"Y": y.reshape(-1), "BLOCK": BLOCK},
                                  _target(grad))
    return y


def select_backward(grad, sizes, dim, index):
    """aten.select_backward: zeros of `sizes` with grad at `index` along `dim`."""
    n = int(sizes[dim])
    return _scatter_slice(grad, sizes, dim, index % n if n else 0, 1)


def slice_backward(grad, sizes, dim, start, end, step):
    """aten.slice_backward: zeros of `sizes` with grad in the slice start:end:step along `dim`."""
    n = int(sizes[dim])
    start = min(max(start + n if start < 0 else start, 0), n)
    return _scatter_slice(grad, sizes, dim, start, step)


def dropout(x, p, train):
    """aten.native_dropout: (x * mask / (1 - p), mask). The mask is drawn by torch's generator as eager
    torch draws it (a Bernoulli(1 - p) tensor like x), so a seeded run drops what eager drops; the
    masking and scaling run on an Alloy kernel."""
    if train is False:
        return x.clone(), torch.ones_like(x, dtype=torch.bool)
    noise = torch.empty_like(x, memory_format=torch.contiguous_format).bernoulli_(1.0 - p)
    y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    keep = torch.empty(x.shape, dtype=torch.bool, device=x.device)
    n = x.numel()
    if n:
        dropout_mask.launch(al.cdiv(n, BLOCK), (x.contiguous().reshape(-1), noise.reshape(-1), n,
                                                 0.0 if p >= 1.0 else 1.0 / (1.0 - p)),
                            {"Y": y.reshape(-1), "Keep": keep.reshape(-1), "BLOCK": BLOCK}, _target(x))
    return y, keep


def _leading_strides(t: torch.Tensor, shape) -> tuple[torch.Tensor, list[int]]:
    """The memory t spans once broadcast to `shape` (its last dimension made contiguous), as a 1-D view the
    kernel binds, and its strides over the leading dims padded to three."""
    t = t.expand(shape)
    if t.stride(-1) != 1:
        t = t.contiguous()
    strides = [0] * (3 - (len(shape) - 1)) + list(t.stride()[:-1])
    return flat(t), strides


def rotary(x, cos, sin, dtype):
    """x * cos + rotate_half(x) * sin (Hugging Face's apply_rotary_pos_emb for one tensor) in one kernel; cos
    and sin broadcast to x; the result in `dtype`, contiguous."""
    shape = tuple(x.shape)
    lead = [1] * (3 - (len(shape) - 1)) + list(shape[:-1])
    half = shape[-1] // 2
    operands = [_leading_strides(t, shape) for t in (x, cos, sin)]
    y = torch.empty(shape, dtype=dtype, device=x.device)
    rows = math.prod(lead)
    if rows and half:
        (xs, xst), (cs, cst), (ss, sst) = operands
        rotate_half_rows.launch(rows, (xs, cs, ss, lead[1], lead[2], *xst, *cst, *sst),
                                {"Y": y, "HALF": half, "BLOCK": 1 << max(half - 1, 0).bit_length()}, _target(x))
    return y
