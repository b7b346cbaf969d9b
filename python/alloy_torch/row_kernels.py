"""Alloy kernels for ATen ops with no builtin of the same contract: log-softmax, embedding lookup and its
weight gradient."""
from __future__ import annotations

import torch

import alloy as al

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
