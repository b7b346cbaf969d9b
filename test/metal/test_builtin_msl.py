"""Every builtin's kernels (alloy.std) through the Metal pipeline: tile IR -> SIMT -> MSL, the MSL checked
against the Metal-stdlib shim, for the specializations representative calls launch on the CPU target
(recorded as they compile). Nothing runs on Metal."""
import numpy as np
import pytest

import alloy as al
import alloy.compiler
import alloy.runtime.specializations as lookup
from alloy.runtime.kernel import Kernel
from alloy.runtime.torch_dtypes import bfloat16
from alloy.std import (activations, convolution, flash_attention, flash_attention_backward, gemm, losses,
                       normalization, permute, permute_kernel, pooling, rotary, row_softmax)
from alloy.std.plans import Plans

STD_MODULES = (activations, convolution, flash_attention, flash_attention_backward, gemm, losses, normalization,
               permute, permute_kernel, pooling, rotary, row_softmax)

RNG = np.random.default_rng(0)


def _calls(dt):
    x = RNG.standard_normal((6, 100)).astype(dt)
    long = RNG.standard_normal((2, 9000)).astype(dt)
    w, b = RNG.standard_normal(100).astype(dt), RNG.standard_normal(100).astype(dt)
    a, bt = RNG.standard_normal((40, 64)).astype(dt), RNG.standard_normal((24, 64)).astype(dt)
    q = RNG.standard_normal((1, 4, 20, 32)).astype(dt)
    kv = RNG.standard_normal((1, 2, 20, 32)).astype(dt)
    rot = RNG.standard_normal((5, 3, 32)).astype(dt)
    return {
        "softmax": lambda: (al.softmax(x), al.softmax(long)),
        "layernorm": lambda: (al.layernorm(x, w, b), al.layernorm(long, long[0], long[1])),
        "group_norm": lambda: al.group_norm(x.reshape(2, 6, 50), 3, w[:6].copy(), b[:6].copy()),
        "rms_norm": lambda: (al.rms_norm(x, w), al.rms_norm(long, long[0])),
        "activations": lambda: (al.silu(x), al.gelu(x), al.gelu(x, approximate="tanh")),
        "cross_entropy": lambda: al.cross_entropy(x, np.arange(6)),
        "gemms": lambda: (al.dot_transpose_rhs(a, bt), al.matmul(a, bt.T.copy()),
                          al.linear(a, bt, bt[:, 0].copy(), "gelu"), al.gated_linear(a, bt, bt, "silu")),
        "attention": lambda: (al.attention(q, kv, kv, causal=True), al.attention(q, kv, kv)),
        "attention_backward": lambda: al.attention_backward(q, q, kv, kv, q, np.zeros((1, 4, 20), np.float32),
                                                            causal=True),
        "pool_gradients": lambda: (al.max_pool2d_backward(RNG.standard_normal((1, 3, 5, 5)).astype(dt),
                                                          np.zeros((1, 3, 5, 5), np.int64), (1, 3, 9, 9)),
                                   al.avg_pool2d_backward(RNG.standard_normal((1, 3, 5, 5)).astype(dt), (1, 3, 9, 9),
                                                          3, 2, 1)),
        "rope": lambda: (al.rope(rot, np.arange(5)), al.rope(rot, np.arange(5), rotary_dim=16, interleaved=True)),
        "transpose": lambda: al.transpose(x),
        "max_pool2d": lambda: al.max_pool2d(RNG.standard_normal((1, 3, 9, 9)).astype(dt), 3, 2, 1,
                                            return_indices=True),
        "avg_pool2d": lambda: (al.avg_pool2d(RNG.standard_normal((1, 3, 9, 9)).astype(dt), 3, 2, 1),
                               al.avg_pool2d(RNG.standard_normal((1, 3, 9, 9)).astype(dt), output_size=(2, 3))),
        "conv2d": lambda: al.conv2d(RNG.standard_normal((1, 3, 9, 9)).astype(dt),
                                    RNG.standard_normal((4, 3, 3, 3)).astype(dt), None, 2, 1),
        "conv_transpose2d": lambda: al.conv_transpose2d(RNG.standard_normal((1, 3, 5, 5)).astype(dt),
                                                        RNG.standard_normal((3, 4, 3, 3)).astype(dt), None, 2, 1, 1),
        "conv2d_backward": lambda: al.conv2d_backward(RNG.standard_normal((1, 4, 5, 5)).astype(dt),
                                                      RNG.standard_normal((1, 3, 9, 9)).astype(dt),
                                                      RNG.standard_normal((4, 3, 3, 3)).astype(dt), 2, 1),
    }


CASES = [(name, dt) for dt in (np.float32, np.float16, bfloat16) for name in _calls(np.float32)]


@pytest.mark.parametrize("name,dt", CASES, ids=[f"{n}-{np.dtype(d).name}" for n, d in CASES])
def test_builtin_msl_passes_shim(name, dt, monkeypatch):
    from alloy.targets.metal import check_msl, compile_tile_module

    real, seen = lookup.compile_spec, {}

    def record(source, source_hash, spec, target="cpu"):
        seen.setdefault((source_hash, spec.key()), (source, spec))
        return real(source, source_hash, spec, target)

    monkeypatch.setattr(lookup, "compile_spec", record)
    for module in STD_MODULES:  # compile afresh: kernels memoise their specialisations, plans their launches
        for value in list(vars(module).values()):
            if isinstance(value, Kernel):
                monkeypatch.setattr(value, "_compiled", {})
        plans = getattr(module, "PLANS", None)
        if isinstance(plans, Plans):
            monkeypatch.setattr(module, "PLANS", Plans())
        elif isinstance(plans, dict):
            for name in plans:
                monkeypatch.setitem(plans, name, Plans())
    al.synchronize()  # the earlier tests' pending launches are not this test's
    outs = _calls(dt)[name]()
    for out in outs if isinstance(outs, tuple) else (outs,):
        for value in out if isinstance(out, tuple) else (out,):
            np.asarray(value)
    assert seen, f"al.{name} compiled no kernel"
    for source, spec in seen.values():
        ctx, module, _ = alloy.compiler.tile_ir(source, spec)
        with ctx:
            art = compile_tile_module(module, keep_stages=True)
        assert f"kernel void {art.entry}(" in art.msl
        check_msl(art.msl, name=f"{name}.{art.entry}.metal")
