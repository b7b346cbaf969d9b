"""The builtins (alloy.std) on the CUDA target: host arrays with the target set to CUDA, and torch CUDA
tensors where torch has CUDA; numbers against torch on the CPU. Without a driver the first launch of each
builtin compiles its PTX (filling the cache) and the test skips."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import alloy as al
import alloy.config

pytestmark = pytest.mark.cuda


class Gpu:
    """Runs builtins on the CUDA target; without a driver every launch only compiles (filling the cache),
    checks are skipped and `finish()` skips the test."""

    def __init__(self, cuda):
        self.cuda = cuda
        self.present = cuda.available()
        self.reason = cuda.unavailable_reason()

    def __call__(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def check(self, got, ref, tol):
        if not self.present:
            return
        got = got.cpu() if isinstance(got, torch.Tensor) else torch.from_numpy(np.asarray(got).astype(np.float64))
        torch.testing.assert_close(got.double(), ref.double(), atol=tol, rtol=tol)

    def finish(self):
        if not self.present:
            pytest.skip(f"compiled to PTX only; not run: {self.reason}")


def close(got, ref, tol):
    torch.testing.assert_close(got.double().cpu(), ref.double().cpu(), atol=tol, rtol=tol)


@pytest.fixture
def on_cuda():
    from alloy.runtime import cuda

    old = alloy.config.get().target
    alloy.config.set(target="cuda")
    gpu = Gpu(cuda)
    cuda.compile_only(not gpu.present)
    yield gpu
    cuda.compile_only(False)
    alloy.config.set(target=old)


DTYPES = [(torch.float32, 2e-5), (torch.float16, 2e-2)]


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_rows(on_cuda, dtype, tol):
    x = torch.randn(33, 1500).to(dtype)
    w, b = torch.randn(1500).to(dtype), torch.randn(1500).to(dtype)
    xs = x.numpy() if dtype == torch.float32 else x.numpy()
    on_cuda.check(on_cuda(al.softmax, xs), torch.softmax(x.double(), -1), tol)
    on_cuda.check(on_cuda(al.layernorm, xs, w.numpy(), b.numpy()), F.layer_norm(x.double(), (1500,), w.double(), b.double()),
          tol * 4)
    y, rstd = on_cuda(al.rms_norm, xs, w.numpy())
    ref = torch.rsqrt(x.double().pow(2).mean(-1) + 1e-6)
    on_cuda.check(rstd, ref, tol)
    on_cuda.check(y, x.double() * ref[:, None] * w.double(), tol * 4)
    on_cuda.check(on_cuda(al.silu, xs), F.silu(x.double()), tol)
    on_cuda.check(on_cuda(al.gelu, xs), F.gelu(x.double()), tol)
    labels = torch.randint(0, 1500, (33,))
    loss = on_cuda(al.cross_entropy, xs, labels.numpy())
    on_cuda.check(loss, F.cross_entropy(x.double(), labels, reduction="none"), tol)
    on_cuda.finish()


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_long_rows(on_cuda, dtype, tol):
    x = torch.randn(4, 20000).to(dtype)
    on_cuda.check(on_cuda(al.softmax, x.numpy()), torch.softmax(x.double(), -1), tol)
    on_cuda.finish()


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_gemm_attention_rope(on_cuda, dtype, tol):
    a, b = torch.randn(300, 256).to(dtype), torch.randn(200, 256).to(dtype)
    on_cuda.check(on_cuda(al.dot_transpose_rhs, a.numpy(), b.numpy()), a.double() @ b.double().T, tol * 20)
    on_cuda.check(on_cuda(al.matmul, a.numpy(), b.T.contiguous().numpy()), a.double() @ b.double().T, tol * 20)
    q = torch.randn(1, 4, 70, 64).to(dtype)
    k, v = torch.randn(1, 2, 70, 64).to(dtype), torch.randn(1, 2, 70, 64).to(dtype)
    mask = torch.ones(70, 70, dtype=torch.bool).tril()
    ref = F.scaled_dot_product_attention(q.double(), k.double().repeat_interleave(2, 1),
                                         v.double().repeat_interleave(2, 1), attn_mask=mask)
    on_cuda.check(on_cuda(al.attention, q.numpy(), k.numpy(), v.numpy(), causal=True), ref, tol)
    x = torch.randn(5, 3, 64)
    pos = torch.arange(5)
    on_cuda(al.rope, x.numpy(), pos.numpy())
    bias = torch.randn(200).to(dtype)
    on_cuda.check(on_cuda(al.linear, a.numpy(), b.numpy(), bias.numpy(), "gelu_tanh"),
                  F.gelu(a.double() @ b.double().T + bias.double(), approximate="tanh"), tol * 20)
    x4, w4 = torch.randn(2, 3, 11, 13).to(dtype), torch.randn(5, 3, 3, 3).to(dtype)
    on_cuda.check(on_cuda(al.max_pool2d, x4.numpy(), 3, 2, 1), F.max_pool2d(x4.double(), 3, 2, 1), 0)
    on_cuda.check(on_cuda(al.avg_pool2d, x4.numpy(), 3, 2, 1), F.avg_pool2d(x4.double(), 3, 2, 1), tol)
    on_cuda.check(on_cuda(al.avg_pool2d, x4.numpy(), output_size=(2, 3)), F.adaptive_avg_pool2d(x4.double(), (2, 3)),
                  tol)
    gw, gb = torch.randn(3).to(dtype), torch.randn(3).to(dtype)
    on_cuda.check(on_cuda(al.group_norm, x4.numpy(), 3, gw.numpy(), gb.numpy()),
                  F.group_norm(x4.double(), 3, gw.double(), gb.double()), tol * 4)
    on_cuda.check(on_cuda(al.conv2d, x4.numpy(), w4.numpy(), None, 2, 1),
                  F.conv2d(x4.double(), w4.double(), None, 2, 1), tol * 20)
    wt4 = torch.randn(3, 4, 3, 3).to(dtype)
    on_cuda.check(on_cuda(al.conv_transpose2d, x4.numpy(), wt4.numpy(), None, 2, 1, 1),
                  F.conv_transpose2d(x4.double(), wt4.double(), None, 2, 1, 1), tol * 20)
    xd, wd = x4.double().requires_grad_(), w4.double().requires_grad_()
    gy = torch.randn(2, 5, 6, 7).to(dtype)
    F.conv2d(xd, wd, None, 2, 1).backward(gy.double())
    gx, gw, _ = on_cuda(al.conv2d_backward, gy.numpy(), x4.numpy(), w4.numpy(), 2, 1, 1, (True, True, False))
    on_cuda.check(gx, xd.grad, tol * 20)
    on_cuda.check(gw, wd.grad, tol * 20 * wd.grad.abs().max().item())
    up = torch.randn(200, 256).to(dtype)
    ref = F.silu(a.double() @ b.double().T) * (a.double() @ up.double().T)
    on_cuda.check(on_cuda(al.gated_linear, a.numpy(), b.numpy(), up.numpy()), ref,
                  tol * 20 * ref.abs().max().item())  # errors relative to the largest value
    on_cuda.finish()


@pytest.mark.parametrize("dtype,tol", DTYPES)
def test_attention_backward(on_cuda, dtype, tol):
    q, g = torch.randn(2, 4, 70, 64).to(dtype), torch.randn(2, 4, 70, 64).to(dtype)
    k, v = torch.randn(2, 2, 70, 64).to(dtype), torch.randn(2, 2, 70, 64).to(dtype)
    qr, kr, vr = (t.double().requires_grad_() for t in (q, k, v))
    ref = F.scaled_dot_product_attention(qr, kr.repeat_interleave(2, 1), vr.repeat_interleave(2, 1), is_causal=True)
    ref.backward(g.double())
    o, lse = on_cuda(al.attention, q.numpy(), k.numpy(), v.numpy(), causal=True, return_lse=True)
    on_cuda.check(o, ref, tol)
    grads = on_cuda(al.attention_backward, g.numpy(), q.numpy(), k.numpy(), v.numpy(), np.asarray(o),
                    np.asarray(lse), causal=True)
    for got, want in zip(grads, (qr.grad, kr.grad, vr.grad)):
        on_cuda.check(got, want, tol * 10)
    on_cuda.finish()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch without CUDA")
def test_torch_cuda_tensors_stay_on_the_gpu():
    x = torch.randn(64, 1500, device="cuda", dtype=torch.float16)  # the PTX of test_rows
    y = al.softmax(x)
    assert y.is_cuda and y.dtype == torch.float16
    close(y, torch.softmax(x.double(), -1), 2e-2)
    a, b = torch.randn(256, 128, device="cuda"), torch.randn(96, 128, device="cuda")  # the PTX of test_gemm_attention_rope
    c = al.dot_transpose_rhs(a, b)
    assert c.is_cuda and c.shape == (256, 96)
    close(c, a.double() @ b.double().T, 1e-3)
    bias = torch.randn(96, device="cuda")
    y = al.linear(a, b, bias, "gelu_tanh")  # the PTX of test_gemm_attention_rope
    assert y.is_cuda
    close(y, torch.nn.functional.gelu(a.double() @ b.double().T + bias.double(), approximate="tanh"), 1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch without CUDA")
def test_torch_cuda_calls_rebind_a_launch_plan(monkeypatch):
    from alloy.std import gemm, normalization, row_softmax
    from alloy.std.plans import Plans

    monkeypatch.setattr(row_softmax, "PLANS", Plans())
    monkeypatch.setitem(normalization.PLANS, "rms_norm", Plans())
    monkeypatch.setitem(gemm.PLANS, "dot_transpose_rhs", Plans())
    w = torch.randn(1500, device="cuda", dtype=torch.float16)
    for i in range(3):  # new tensors each call: a stale binding would give the first call's result
        x = torch.randn(64, 1500, device="cuda", dtype=torch.float16)  # the PTX of test_rows
        a, b = torch.randn(256, 128, device="cuda"), torch.randn(96, 128, device="cuda")
        close(al.softmax(x), torch.softmax(x.double(), -1), 2e-2)
        y, rstd = al.rms_norm(x, w)
        ref = torch.rsqrt(x.double().pow(2).mean(-1) + 1e-6)
        close(rstd, ref, 2e-2)
        close(y, x.double() * ref[:, None] * w.double(), 8e-2)
        c = al.dot_transpose_rhs(a, b)
        assert c.is_cuda and c.shape == (256, 96)
        close(c, a.double() @ b.double().T, 1e-3)
        if i == 0:
            def full_path(*args, **kwargs):
                raise AssertionError("a repeat call took the full path")

            for module in (row_softmax, normalization, gemm):
                monkeypatch.setattr(module, "Call", full_path)
    assert len(row_softmax.PLANS._plans) == len(normalization.PLANS["rms_norm"]._plans) == 1
