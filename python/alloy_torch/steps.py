"""The steps of a compiled plan: a fused elementwise kernel, a reduction kernel, a builtin call, a view, or
an eager fallback. Each reads its inputs from the plan's value slots and writes its results back."""
from __future__ import annotations

import math

import torch

import alloy as al

from .pointwise import BLOCK, FLOAT_DTYPES, Operand, kernel_source, load_kernel

aten = torch.ops.aten


def resolve(value, env):
    """A node argument with every node replaced by its computed value."""
    if isinstance(value, Slot):
        return env[value.index]
    if isinstance(value, (list, tuple)):
        return type(value)(resolve(v, env) for v in value)
    if isinstance(value, dict):
        return {k: resolve(v, env) for k, v in value.items()}
    return value


class Slot:
    """The plan's value slot of one graph node."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self):
        return f"%{self.index}"


def _target(tensors) -> str:
    return "cuda" if any(t.is_cuda for t in tensors) else "cpu"


class EagerStep:
    """A node run by torch itself: a view (no data moves) or an op without an Alloy lowering."""

    def __init__(self, target, args, kwargs, out: int) -> None:
        self.target, self.args, self.kwargs, self.out = target, args, kwargs, out

    def run(self, env) -> None:
        env[self.out] = self.target(*resolve(self.args, env), **resolve(self.kwargs, env))


def flat(t: torch.Tensor) -> torch.Tensor:
    """A contiguous 1-D view of the memory a strided tensor spans (from its first element): kernels bind
    it and walk the tensor's own strides."""
    span = 1 + sum((n - 1) * s for n, s in zip(t.shape, t.stride()) if n > 0)
    return t.as_strided((span,), (1,))


def _collapse(shape: list[int], strides: list[list[int]]):
    """Merge adjacent dimensions that every operand (and the contiguous output) walks as one."""
    dims = [[shape[0], [s[0] for s in strides]]] if shape else []
    for d in range(1, len(shape)):
        prev_size, prev_strides = dims[-1]
        if all(ps == s[d] * shape[d] for ps, s in zip(prev_strides, strides)):
            dims[-1] = [prev_size * shape[d], [s[d] for s in strides]]
        else:
            dims.append([shape[d], [s[d] for s in strides]])
    sizes = [d[0] for d in dims] or [1]
    per_operand = [[d[1][i] for d in dims] or [0] for i in range(len(strides))]
    return sizes, per_operand


def empty_in_layout(shape, like: torch.Tensor | None, dtype, device) -> torch.Tensor:
    """An uninitialised tensor of `shape` laid out in the dimension order of `like` (the node's traced
    value), as eager torch would lay it out, so that later views of it are legal."""
    if like is None or like.dim() != len(shape) or like.is_contiguous():
        return torch.empty(shape, dtype=dtype, device=device)
    strides = [int(s) for s in like.stride()]
    order = sorted(range(len(shape)), key=lambda d: -strides[d])
    base = torch.empty([shape[d] for d in order], dtype=dtype, device=device)
    return base.permute([order.index(d) for d in range(len(shape))])


def _stride_class(stride: int) -> str:
    return "0" if stride == 0 else "1" if stride == 1 else "s"


class PointwiseStep:
    """One generated kernel for a group of elementwise nodes of one output shape."""

    def __init__(self, name: str, inputs: list[Slot], body: list[str], results: list[tuple[str, torch.dtype, int]],
                 layouts: list) -> None:
        self.name, self.inputs, self.body, self.results, self.layouts = name, inputs, body, results, layouts
        self._kernels: dict = {}
        self._prepared: dict = {}  # input shapes, strides, dtypes -> prepare()'s result

    def _kernel(self, rank: int, operands: list[Operand], result_strides: list[str]):
        key = (rank, tuple(operands), tuple(result_strides), tuple(dtype for _, dtype, _ in self.results))
        kernel = self._kernels.get(key)
        if kernel is None:
            results = [(value, "bool" if dtype is torch.bool else FLOAT_DTYPES[dtype]) for value, dtype, _ in self.results]
            source = kernel_source(self.name, rank, operands, self.body, results, result_strides)
            kernel = self._kernels[key] = load_kernel(source, self.name)
        return kernel

    def run(self, env) -> None:
        tensors = [env[s.index] for s in self.inputs]
        key = tuple((t.shape, t.stride(), t.dtype, t.device) for t in tensors)
        prepared = self._prepared.get(key)
        # a group of constants only (an optimizer's scalar arithmetic) takes its shape and device from the graph
        device = tensors[0].device if tensors else self.layouts[0].device
        if prepared is None:
            shape = list(torch.broadcast_shapes(*(t.shape for t in tensors)) if tensors else self.layouts[0].shape)
            outs = [empty_in_layout(shape, like, dtype, device)
                    for (_, dtype, _), like in zip(self.results, self.layouts)]
            prepared = self._prepared[key] = self.prepare(tensors, outs)
        else:
            outs = [torch.empty_strided(size, stride, dtype=dtype, device=device) for size, stride, dtype in prepared[-1]]
        for (_, _, slot), out in zip(self.results, outs):
            env[slot] = out
        self._execute(prepared, tensors, outs)

    def prepare(self, tensors, outs):
        """(kernel, grid, scalar arguments, input spans, output spans, target, output layouts) of a launch
        over `outs` reading `tensors`: everything a later call with the same shapes, strides and dtypes
        reuses. The kernel is None for an empty output."""
        layouts = [(o.shape, o.stride(), o.dtype) for o in outs]
        shape = list(outs[0].shape)
        if math.prod(shape) == 0:
            return None, None, None, None, None, None, layouts
        expanded = [t.expand(shape) for t in tensors]
        spans = [flat(t).numel() for t in expanded]
        out_spans = [flat(o).numel() for o in outs]
        everything = expanded + outs
        sizes, strides = _collapse(shape or [1], [list(t.stride()) or [0] for t in everything])
        rank = len(sizes)
        classes = [_stride_class(s[-1]) for s in strides]
        operands = [Operand(c, t.dtype is torch.bool) for c, t in zip(classes, expanded)]
        scalars = list(sizes)
        for c, s in zip(classes, strides):
            scalars += s[:-1] + ([s[-1]] if c == "s" else [])
        grid = (math.prod(sizes[:-1]), al.cdiv(sizes[-1], BLOCK))
        kernel = self._kernel(rank, operands, classes[len(expanded):])
        return kernel, grid, scalars, spans, out_spans, _target(tensors), layouts

    def launch(self, tensors: list[torch.Tensor], outs: list[torch.Tensor]) -> None:
        """Run the kernel once over `outs` (any strides, the group's output shape) reading `tensors`."""
        self._execute(self.prepare(tensors, outs), tensors, outs)

    @staticmethod
    def _execute(prepared, tensors, outs) -> None:
        kernel, grid, scalars, spans, out_spans, target, _ = prepared
        if kernel is None:
            return
        args = [(t.view(torch.uint8) if t.dtype is torch.bool else t).as_strided((n,), (1,))
                for t, n in zip(tensors, spans)]
        kw = {f"Y{j}": (o.view(torch.uint8) if o.dtype is torch.bool else o).as_strided((n,), (1,))
              for j, (o, n) in enumerate(zip(outs, out_spans))}
        kw["BLOCK"] = BLOCK
        kernel.launch(grid, args + scalars, kw, target)


class ConcatStep:
    """aten.cat: each input copied by an Alloy kernel into its slice of the output."""

    def __init__(self, inputs: list[Slot], dim: int, like, out: int) -> None:
        self.inputs, self.dim, self.like, self.out = inputs, dim, like, out
        self._copy = PointwiseStep("alloy_torch_copy", [], ["v0 = x0"], [("v0", None, -1)], [None])

    def run(self, env) -> None:
        tensors = [env[s.index] for s in self.inputs]
        tensors = [t for t in tensors if not (t.dim() == 1 and t.shape[0] == 0)]  # torch skips empty 1-D inputs
        dim = self.dim % tensors[0].dim()
        shape = list(tensors[0].shape)
        shape[dim] = sum(t.shape[dim] for t in tensors)
        out = empty_in_layout(shape, self.like, tensors[0].dtype, tensors[0].device)
        start = 0
        for t in tensors:
            n = t.shape[dim]
            self._copy.results = [("v0", t.dtype, -1)]
            self._copy.launch([t], [out.narrow(dim, start, n)])
            start += n
        env[self.out] = out


REDUCE_SOURCE = '''import alloy as al


@al.kernel
def {name}(X, Y: al.output, n, row_stride, col_stride, BLOCK: al.constexpr):
    row = al.program_id(0)
    acc = al.full((BLOCK,), {init}, al.float32)
    for start in range(0, n, BLOCK):
        cols = start + al.arange(0, BLOCK)
        x = al.load(X + row * row_stride + cols * col_stride, mask=cols < n, other={init}).to(al.float32)
        acc = {combine}
    al.store(Y + row, ({final}).to(Y.dtype))
'''
REDUCTIONS = {  # op -> (init, combine, final over the row's total r and count n)
    "sum": ("0.0", "acc + x", "al.sum(acc, axis=0)"),
    "mean": ("0.0", "acc + x", "al.sum(acc, axis=0) / n"),
    "amax": ('-float("inf")', "al.maximum(acc, x)", "al.max(acc, axis=0)"),
    "amin": ('float("inf")', "al.minimum(acc, x)", "al.min(acc, axis=0)"),
}
_REDUCE_KERNELS: dict = {}


def reduce_kernel(kind: str):
    kernel = _REDUCE_KERNELS.get(kind)
    if kernel is None:
        init, combine, final = REDUCTIONS[kind]
        name = f"alloy_torch_{kind}_rows"
        source = REDUCE_SOURCE.format(name=name, init=init, combine=combine, final=final)
        kernel = _REDUCE_KERNELS[kind] = load_kernel(source, name)
    return kernel


class ReductionStep:
    """sum / mean / amax / amin over some dimensions: kept dimensions become rows, reduced ones a strided row."""

    def __init__(self, reduction: str, x: Slot, dims, keepdim: bool, dtype, out: int) -> None:
        self.reduction, self.x, self.dims, self.keepdim, self.dtype, self.out = reduction, x, dims, keepdim, dtype, out

    def run(self, env) -> None:
        x = env[self.x.index]
        ndim = max(x.dim(), 1)
        dims = sorted({d % ndim for d in (self.dims if self.dims else range(ndim))})
        x1 = x.reshape(1) if x.dim() == 0 else x
        kept = [d for d in range(x1.dim()) if d not in dims]
        kept_shape = [x1.shape[d] for d in kept]
        moved = x1.permute(kept + dims)
        rows, n = math.prod(kept_shape), math.prod(x1.shape[d] for d in dims)
        view = moved.reshape(rows, n)  # a view whenever the dimensions allow it
        out_shape = [1 if d in dims else x1.shape[d] for d in range(x1.dim())] if self.keepdim else kept_shape
        dtype = self.dtype or x.dtype
        y = torch.empty(rows, dtype=dtype, device=x.device)
        if rows and n:
            reduce_kernel(self.reduction).launch(rows, (flat(view), n, view.stride(0), view.stride(1)),
                                                 {"Y": y, "BLOCK": 256}, _target([x]))
        elif rows:
            y.fill_(0.0 if self.reduction in ("sum",) else float("nan"))
        env[self.out] = y.reshape(out_shape if x.dim() else [])


class BuiltinStep:
    """A node computed by one of Alloy's builtins (matmul, softmax, layernorm)."""

    def __init__(self, fn, args, out: int) -> None:
        self.fn, self.args, self.out = fn, args, out

    def run(self, env) -> None:
        env[self.out] = self.fn(*resolve(self.args, env))
