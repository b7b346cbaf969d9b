"""Alloy's builtins: fast kernels for common operations, with shapes and constexprs inferred from the inputs.

Each takes numpy arrays, torch tensors (CPU or CUDA; CUDA tensors run on the CUDA
target) or AlloyBuffers in float32, float16 or bfloat16, computes in float32 and
returns the input's dtype: torch tensors for torch inputs, AlloyBuffers otherwise.
"""
from .activations import gelu, silu  # noqa: F401
from .flash_attention_backward import attention_backward  # noqa: F401
from .convolution import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward  # noqa: F401
from .flash_attention import attention  # noqa: F401
from .gemm import dot_transpose_rhs, gated_linear, linear, matmul  # noqa: F401
from .losses import cross_entropy  # noqa: F401
from .normalization import group_norm, layernorm, rms_norm  # noqa: F401
from .permute import transpose  # noqa: F401
from .pooling import avg_pool2d, avg_pool2d_backward, max_pool2d, max_pool2d_backward  # noqa: F401
from .rotary import rope  # noqa: F401
from .row_softmax import softmax  # noqa: F401
