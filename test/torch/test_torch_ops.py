"""alloy_torch, op by op: forward and backward against eager torch, and the nodes on Alloy kernels."""
import copy
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_helpers import AVX2_FALLBACKS, Recorder, compiled_and_eager

torch.manual_seed(0)


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


POINTWISE = {
    "add_mul_relu": lambda x, y: torch.relu(x * 2.0 + y),
    "broadcast_bias": lambda x, y: x + y.sum(dim=0),
    "exp_log_tanh": lambda x, y: torch.tanh(torch.exp(-x.abs()) + torch.log1p(y.abs())),
    "sigmoid_silu": lambda x, y: torch.sigmoid(x) * F.silu(y),
    "gelu_erf": lambda x, y: F.gelu(x) - y,
    "gelu_tanh": lambda x, y: F.gelu(x, approximate="tanh") * y,
    "where_compare": lambda x, y: torch.where(x > y, x, y * 0.5),
    "pow_rsqrt": lambda x, y: x.pow(2) * torch.rsqrt(y * y + 1.0),
    "div_sub_neg": lambda x, y: -(x - y) / (y.abs() + 1.0),
    "maximum_clamp": lambda x, y: torch.maximum(x, y).clamp_min(-0.5),
}


@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_pointwise_forward_and_backward(name):
    x, y = torch.randn(6, 37), torch.randn(6, 37)
    report = compiled_and_eager(Lambda(POINTWISE[name]), x, y)
    assert report.alloy_nodes >= 1 and report.fallback_nodes == 0, report


def test_an_elementwise_chain_is_one_kernel():
    x = torch.randn(1000)
    report = compiled_and_eager(Lambda(lambda x: torch.relu(x * 2.0 + 1.0) - 3.0), x, grad_out=False)
    assert report.kernels == 1 and report.alloy_nodes == 4, report


def test_non_contiguous_and_broadcast_inputs_are_read_by_stride():
    x = torch.randn(8, 12).t()  # a transposed view
    y = torch.randn(12, 1)
    compiled_and_eager(Lambda(lambda x, y: x * y + x.exp()), x, y)


@pytest.mark.parametrize("dtype,tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)])
def test_half_precision(dtype, tol):
    x, y = torch.randn(4, 64, dtype=dtype), torch.randn(4, 64, dtype=dtype)
    compiled_and_eager(Lambda(lambda x, y: F.gelu(x) * y + 1.0), x, y, grad_out=False, atol=tol, rtol=tol)


@pytest.mark.parametrize("fn", [lambda x: x.sum(dim=1), lambda x: x.mean(dim=0, keepdim=True),
                                lambda x: x.amax(dim=-1), lambda x: x.sum(), lambda x: x.amin(dim=(0, 2))])
def test_reductions(fn):
    report = compiled_and_eager(Lambda(fn), torch.randn(5, 33, 7), grad_out=False)
    assert report.fallback_nodes == 0, report


@pytest.mark.parametrize("module,shape", [
    (nn.Linear(16, 24), (5, 16)), (nn.Linear(16, 24, bias=False), (2, 3, 16)),
    (nn.LayerNorm(40), (3, 7, 40)), (nn.Softmax(dim=-1), (4, 50)), (nn.GELU(), (3, 9)),
])
def test_modules_forward_and_backward(module, shape):
    report = compiled_and_eager(module, torch.randn(*shape), atol=1e-5, rtol=1e-4)
    assert report.fallback_nodes == 0, report


def test_bmm_and_embedding():
    emb = nn.Embedding(20, 8)
    ids = torch.randint(0, 20, (3, 5))
    report = compiled_and_eager(emb, ids)
    assert report.fallback_nodes == 0
    a, b = torch.randn(3, 4, 6), torch.randn(3, 6, 5)
    compiled_and_eager(Lambda(torch.bmm), a, b, atol=1e-5, rtol=1e-4)


def test_attention_inference_uses_alloy_with_grouped_heads():
    q, k, v = torch.randn(2, 4, 9, 16), torch.randn(2, 2, 9, 16), torch.randn(2, 2, 9, 16)
    fn = Lambda(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    with torch.no_grad():
        report = compiled_and_eager(fn, q, k, v, grad_out=False, atol=1e-5, rtol=1e-4)
    assert report.fallback_nodes == 0, report


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape", [(1, 2, 8, 4), (2, 3, 45, 24)])  # 45 rows: ragged blocks of queries and keys
def test_attention_backward_runs_on_alloy(causal, shape):
    q, k, v = (torch.randn(shape) for _ in range(3))
    fn = Lambda(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.3))
    report = compiled_and_eager(fn, q.transpose(1, 2).contiguous().transpose(1, 2), k, v, atol=2e-5, rtol=1e-4)
    assert set(report.fallback_ops) <= AVX2_FALLBACKS, report.fallback_ops


def test_attention_log_sum_exp_is_torchs():
    import alloy as al

    q, k, v = torch.randn(2, 3, 20, 16), torch.randn(2, 3, 33, 16), torch.randn(2, 3, 33, 16)
    out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False)
    got, got_lse = al.attention(q, k, v, return_lse=True)
    torch.testing.assert_close(got, out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_lse, lse, atol=1e-5, rtol=1e-5)


def test_an_unsupported_op_falls_back_with_one_warning():
    fn = Lambda(lambda x: torch.cumsum(x, dim=0) * 2.0)
    x = torch.randn(10)
    with Recorder() as rec, pytest.warns(UserWarning, match="cumsum"):
        out = torch.compile(fn, backend="alloy")(x)
    torch.testing.assert_close(out, fn(x))
    report = rec.report()
    assert report.fallback_ops == {"aten.cumsum.default": 1} and report.alloy_nodes == 1


def test_explain_reports_alloy_and_fallback_nodes(capsys):
    import alloy_torch

    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    result = alloy_torch.explain(model, torch.randn(2, 8))
    assert result.alloy_nodes >= 2 and result.fallback_nodes == 0 and result.graphs == 1
    assert "alloy nodes" in capsys.readouterr().out
    assert result.fallback_fraction == 0.0


def test_the_backend_is_found_through_its_entry_point():
    code = ("import sys, torch; f = torch.compile(lambda x: x * 2 + 1, backend='alloy'); "
            "assert f(torch.ones(3)).tolist() == [3.0, 3.0, 3.0]; assert 'alloy_torch' in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_set_training_mode_checks_its_argument():
    from alloy_torch.training import set_training_mode, training_mode

    with pytest.raises(TypeError, match="bool"):
        set_training_mode("yes")
    set_training_mode(True)
    try:
        assert training_mode()
    finally:
        set_training_mode(False)


def test_cat_copies_each_input_by_kernel():
    a, b = torch.randn(3, 4, 5), torch.randn(3, 2, 5).transpose(0, 0)
    report = compiled_and_eager(Lambda(lambda a, b: torch.cat([a * 2.0, b], dim=1)), a, b)
    assert "aten.cat.default" not in report.fallback_ops


@pytest.mark.parametrize("dim", [-1, 0])
def test_log_softmax_and_cross_entropy(dim):
    x = torch.randn(6, 300) * 5
    report = compiled_and_eager(Lambda(lambda x: F.log_softmax(x, dim=dim)), x, atol=1e-5, rtol=1e-5)
    assert "aten._log_softmax.default" not in report.fallback_ops
    labels = torch.randint(0, 300, (6,))
    compiled_and_eager(Lambda(lambda x, t: F.cross_entropy(x, t)), x, labels, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_and_its_gradient_run_on_alloy(reduction, weighted):
    x = torch.randn(300, 37) * 3
    labels = torch.randint(0, 37, (300,))
    labels[::7] = -100  # ignored rows
    weight = torch.rand(37) + 0.5 if weighted else None
    fn = Lambda(lambda x, t: F.cross_entropy(x, t, weight=weight, reduction=reduction))
    report = compiled_and_eager(fn, x, labels, atol=1e-5, rtol=1e-5)
    assert report.fallback_nodes == 0, report.fallback_ops


def test_select_and_slice_gradients_run_on_alloy():
    def fn(x):
        a, b, c = x  # select along the first axis, as q, k, v = qkv.unbind(0)
        return a * torch.cat([b[:, 1::2], b[:, ::2]], 1) + torch.cat([c[:, -6:], c[:, :6]], 1) * 2.0

    report = compiled_and_eager(Lambda(fn), torch.randn(3, 5, 12))
    assert report.fallback_nodes == 0, report.fallback_ops


@pytest.mark.parametrize("act", [nn.GELU(), nn.GELU(approximate="tanh"), nn.SiLU(), nn.ReLU(), nn.Identity()])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_with_bias_and_activation_is_one_gemm(act, bias):
    model = nn.Sequential(nn.Linear(40, 24, bias=bias), act, nn.Linear(24, 8))
    x = torch.randn(2, 13, 40)
    with torch.no_grad():
        report = compiled_and_eager(model, x, grad_out=False, atol=1e-5, rtol=1e-4)
    fused = 2 if bias else 1 + (not isinstance(act, nn.Identity))  # the second Linear always has its bias
    assert report.pattern_fusions == {"GEMM + bias/activation as al.linear": fused}, report
    assert report.kernels == 2 and report.fallback_nodes == 0, report  # one GEMM per Linear, nothing else


def test_a_training_graph_keeps_what_its_backward_reads():
    model = nn.Sequential(nn.Linear(16, 16), nn.GELU())
    report = compiled_and_eager(model, torch.randn(4, 16), atol=1e-5, rtol=1e-4)  # forward and backward
    # the backward reads the pre-GELU values, so the forward fuses the bias into the GEMM, not the GELU
    assert report.pattern_fusions == {"GEMM + bias/activation as al.linear": 1}, report


class HFRMSNorm(nn.Module):
    """Hugging Face's LlamaRMSNorm: the float32 upcast, then the weight in the input's dtype."""

    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.randn(dim)), eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


@pytest.mark.parametrize("make", [lambda: nn.RMSNorm(48, eps=1e-6), lambda: nn.RMSNorm(48, elementwise_affine=False),
                                  lambda: HFRMSNorm(48)], ids=["nn", "nn-no-weight", "hf"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 4e-2)])
def test_rms_norm_is_one_kernel(make, dtype, tol):
    model = make().to(dtype)
    with torch.no_grad():
        report = compiled_and_eager(model, torch.randn(3, 7, 48).to(dtype), grad_out=False, atol=tol, rtol=tol)
    assert report.pattern_fusions == {"RMSNorm as al.rms_norm": 1} and report.kernels == 1, report


def test_rms_norm_training_matches_eager():
    compiled_and_eager(HFRMSNorm(32), torch.randn(4, 32), atol=1e-5, rtol=1e-4)  # forward and backward


class GatedMLP(nn.Module):
    """Llama's MLP: down(act(gate(x)) * up(x))."""

    def __init__(self, act, dim=40, hidden=56):
        super().__init__()
        self.gate, self.up = nn.Linear(dim, hidden, bias=False), nn.Linear(dim, hidden, bias=False)
        self.down, self.act = nn.Linear(hidden, dim, bias=False), act

    def forward(self, x):
        return self.down(self.act(self.gate(x)) * self.up(x))


@pytest.mark.parametrize("act", [F.silu, nn.GELU(), nn.GELU(approximate="tanh")], ids=["silu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("shape", [(9, 40), (2, 7, 40)])
def test_gated_mlp_is_two_gemms(act, shape):
    with torch.no_grad():
        report = compiled_and_eager(GatedMLP(act), torch.randn(*shape), grad_out=False, atol=1e-5, rtol=1e-4)
    assert report.pattern_fusions == {"gated MLP as al.gated_linear": 1}, report
    assert report.kernels == 2 and report.fallback_nodes == 0, report  # gate and up in one kernel, then down


def test_gated_mlp_training_matches_eager():
    compiled_and_eager(GatedMLP(F.silu), torch.randn(6, 40), atol=1e-5, rtol=1e-4)


def test_conv2d_forward_and_backward_on_alloy():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise
                          nn.Conv2d(8, 4, 3, stride=2, bias=False, groups=2))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        report = compiled_and_eager(model, x, grad_out=False, atol=1e-5, rtol=1e-4)
    assert report.fallback_nodes == 0 and report.kernels == 4, report  # conv, relu, two grouped convs
    report = compiled_and_eager(model, x, atol=1e-4, rtol=1e-4)  # input, weight and bias gradients too
    assert report.fallback_nodes == 0, report


def test_group_norm_forward_and_backward_on_alloy():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.GroupNorm(4, 8), nn.ReLU())
    x = torch.randn(2, 3, 10, 12)
    report = compiled_and_eager(model, x, atol=1e-4, rtol=1e-4)
    assert report.fallback_nodes == 0, report  # the backward decomposes into ops Alloy lowers


def test_max_pool_forward_and_backward_on_alloy():
    model = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.MaxPool2d(3, 2, 1), nn.ReLU())
    report = compiled_and_eager(model, torch.randn(2, 2, 13, 11), atol=1e-5, rtol=1e-4)
    assert report.fallback_nodes == 0, report


@pytest.mark.parametrize("pool", [nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(2, count_include_pad=False),
                                  nn.AdaptiveAvgPool2d((2, 3))], ids=["avg", "avg-no-pad", "adaptive"])
def test_average_pools_forward_and_backward_on_alloy(pool):
    model = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), pool)
    report = compiled_and_eager(model, torch.randn(2, 2, 13, 11), atol=1e-5, rtol=1e-4)
    assert report.fallback_nodes == 0, report


@pytest.mark.parametrize("pool", [nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1), nn.AdaptiveAvgPool2d((2, 3))],
                         ids=["max", "avg", "adaptive"])
def test_pool_gradients_in_bfloat16_on_alloy(pool):
    report = compiled_and_eager(nn.Sequential(pool, nn.Tanh()), torch.randn(2, 3, 13, 11).to(torch.bfloat16),
                                atol=2e-2, rtol=2e-2)
    assert report.fallback_nodes == 0, report.fallback_ops


def test_transposed_convolution_forward_and_backward_on_alloy():
    model = nn.Sequential(nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
                          nn.ConvTranspose2d(6, 6, 3, padding=1, groups=3, bias=False))
    report = compiled_and_eager(model, torch.randn(2, 4, 5, 5), atol=1e-4, rtol=1e-4)
    assert report.fallback_nodes == 0, report


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_dropout_draws_what_eager_draws(dtype, tol):
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Dropout(0.3), nn.Linear(32, 4)).to(dtype)
    eager = copy.deepcopy(model)
    x = torch.randn(64, 16, dtype=dtype)
    with Recorder() as rec:
        compiled = torch.compile(model, backend="alloy")
        torch.manual_seed(7)
        got = compiled(x)
        got.float().sum().backward()
    torch.manual_seed(7)
    want = eager(x)
    want.float().sum().backward()
    assert torch.equal(got == 0, want == 0)  # the same elements dropped
    torch.testing.assert_close(got, want, atol=tol, rtol=tol)
    torch.testing.assert_close(model[0].weight.grad, eager[0].weight.grad, atol=tol * 8, rtol=tol)
    assert rec.report().fallback_nodes == 0, rec.report().fallback_ops
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, backend="alloy")(x), eager.eval()(x), atol=tol, rtol=tol)


class Projections(nn.Module):
    """Three linear layers of one input, as an attention block's q, k and v."""

    def __init__(self, bias):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(32, 32, bias=bias), nn.Linear(32, 16, bias=bias), nn.Linear(32, 16, bias=bias)

    def forward(self, x):
        return torch.cat([self.q(x) * 2.0, self.k(x), torch.relu(self.v(x))], -1)


@pytest.mark.parametrize("bias", [False, True])
def test_batched_projections_are_one_gemm(bias):
    model = Projections(bias)
    report = compiled_and_eager(model, torch.randn(2, 5, 32), atol=1e-5, rtol=1e-5)  # forward and backward
    assert report.pattern_fusions["batched projections (QKV) as one al.linear"] == 1, report.pattern_fusions
    assert report.fallback_nodes == 0, report.fallback_ops
    compiled, x = torch.compile(model.eval(), backend="alloy"), torch.randn(3, 32)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
        model.k.weight.mul_(-1.0)  # an in-place update: the stacked weights are made anew
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_rotary_embedding_is_one_kernel(dtype, tol):
    """Hugging Face's apply_rotary_pos_emb on q (batch, heads, tokens, dim) laid out token-major."""
    q = torch.randn(2, 7, 4, 16).transpose(1, 2).to(dtype)
    cos, sin = torch.randn(2, 1, 7, 16).to(dtype), torch.randn(2, 1, 7, 16).to(dtype)
    fn = Lambda(lambda q, cos, sin: q * cos + _rotate_half(q) * sin)
    with torch.no_grad():
        report = compiled_and_eager(fn, q, cos, sin, grad_out=False, atol=tol, rtol=tol)
    assert report.pattern_fusions["rotary embedding as one kernel"] == 1 and report.kernels == 1, report
    compiled_and_eager(fn, q, cos, sin, atol=tol, rtol=tol)  # training: the backward reads what it needs
