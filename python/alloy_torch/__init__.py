"""The torch.compile backend of Alloy: `import alloy_torch`, then `torch.compile(model, backend="alloy")`.

Forward and backward graphs arrive from AOTAutograd as core-ATen graphs; elementwise chains become fused
Alloy kernels, matmuls, softmax and layer norm run on Alloy's builtins, reductions on generated Alloy
kernels, views stay torch views; any other op runs in eager torch inside the compiled plan (one warning
per op). `explain(model, *inputs)` says which is which.
"""
from __future__ import annotations

from torch._dynamo import list_backends, register_backend

from .backend import alloy as alloy_backend
from .explain import Explanation, explain  # noqa: F401

if "alloy" not in list_backends(exclude_tags=()):
    register_backend(alloy_backend, name="alloy")

__all__ = ["alloy_backend", "explain", "Explanation"]
