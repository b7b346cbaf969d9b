"""The compiled engine's op interface: ``AlloyOps``, the model ops on Alloy kernels with weights
kept quantized (see ops.py, weights.py, matmul_kernels.py, kernels.py)."""
from .ops import AlloyOps
from .weights import DenseWeight, QuantWeight, repack

__all__ = ["AlloyOps", "DenseWeight", "QuantWeight", "repack"]
