"""Builtins compose with lazy fusion (runtime/fusion): pointwise kernels fuse into the builtins' loads
(prologues) and stores (epilogues); what cannot fuse runs kernel by kernel. Numbers against torch."""
import gc
import weakref

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import alloy as al
import alloy.config


@al.kernel
def scale_shift(x, out: al.output, N, BLOCK: al.constexpr = 512):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) * 2.0 + 1.0, mask=m)


@al.kernel
def bias_gelu(x, bias, out: al.output, N, C, BLOCK: al.constexpr = 1024):
    """out = gelu_tanh(x + bias), bias broadcast along the rows of an (N / C, C) x."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    v = al.load(x + offs, mask=m) + al.load(bias + offs % C, mask=m)
    al.store(out + offs, 0.5 * v * (1.0 + al.tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))), mask=m)


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def t(a):
    return torch.from_numpy(np.asarray(a))


def test_numpy_inputs_give_pending_results_that_fuse(rng):
    x = rng.standard_normal((48, 64)).astype(np.float32)
    w = rng.standard_normal((40, 64)).astype(np.float32)
    for _ in range(2):  # the second call takes the recorded plan, and fuses the same way
        with al.profile() as p:
            h = al.dot_transpose_rhs(x, w)
            y = al.gelu(h)
            assert isinstance(y, al.AlloyBuffer) and y.pending is not None and p.launches == 0
            got = np.asarray(y)
        np.testing.assert_allclose(got, F.gelu(t(x) @ t(w).T).numpy(), rtol=1e-5, atol=1e-5)
        assert (p.launches, p.fused, p.allocations) == (1, 1, 1)  # gelu ran in the GEMM's stores
    np.testing.assert_allclose(np.asarray(h), x @ w.T, rtol=1e-5, atol=1e-5)  # computed when read


def test_gemm_bias_gelu_epilogue_and_inspect(rng):
    x = rng.standard_normal((33, 70)).astype(np.float32)
    w = rng.standard_normal((70, 50)).astype(np.float32)
    b = rng.standard_normal(50).astype(np.float32)
    h = al.matmul(x, w)
    y = bias_gelu[al.cdiv(h.size if hasattr(h, "size") else 33 * 50, 1024)](h, b, N=33 * 50, C=50)
    ir = al.inspect(y, print_ir=False)
    assert "@fused_matmul_nn_bias_gelu" in ir and ir.count('"tile.store"') == 1
    with al.profile() as p:
        got = np.asarray(y)
    np.testing.assert_allclose(got.reshape(33, 50), F.gelu(t(x) @ t(w) + t(b), approximate="tanh").numpy(),
                               rtol=1e-5, atol=1e-5)
    assert (p.launches, p.fused, p.allocations) == (1, 1, 1)


def test_pointwise_prologue_and_epilogue_around_softmax(rng):
    x = rng.standard_normal((37, 300)).astype(np.float32)
    with al.profile() as p:
        s = al.softmax(scale_shift[al.cdiv(x.size, 512)](x, N=x.size).reshape(37, 300))
        out = scale_shift[al.cdiv(x.size, 512)](s, N=x.size)
        got = np.asarray(out)
    np.testing.assert_allclose(got, (torch.softmax(t(x) * 2 + 1, -1) * 2 + 1).numpy().ravel(), rtol=1e-5, atol=1e-6)
    assert (p.launches, p.fused, p.allocations) == (1, 2, 1)


def test_multi_output_producer_keeps_its_other_outputs(rng):
    x = rng.standard_normal((20, 96)).astype(np.float32)
    g, b = rng.random(96).astype(np.float32), rng.random(96).astype(np.float32)
    with al.profile() as p:
        y, mean, rstd = al.layernorm(x, g, b, return_stats=True)
        z = al.silu(y)
        got = np.asarray(z)
    want = F.layer_norm(t(x), (96,), t(g), t(b))
    np.testing.assert_allclose(got, F.silu(want).numpy(), rtol=1e-5, atol=1e-5)
    assert (p.launches, p.fused, p.allocations) == (1, 1, 3)  # z, mean and rstd; y is never allocated
    assert mean.pending is None and rstd.pending is None
    np.testing.assert_allclose(np.asarray(mean), x.mean(1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(rstd), 1 / np.sqrt(x.var(1) + 1e-5), rtol=1e-4)
    np.testing.assert_allclose(np.asarray(y), want.numpy(), rtol=1e-5, atol=1e-5)


def test_row_kernels_share_rows_and_a_gemm_runs_apart(rng):
    x = rng.standard_normal((16, 128)).astype(np.float32)
    w = rng.standard_normal((24, 128)).astype(np.float32)
    g, b = np.ones(128, np.float32), np.zeros(128, np.float32)
    y, r = al.rms_norm(x, g)
    with al.profile() as p:
        got = np.asarray(al.dot_transpose_rhs(al.layernorm(al.softmax(y), g, b), w))
    ln = F.layer_norm(torch.softmax(F.rms_norm(t(x), (128,), t(g), eps=1e-6), -1), (128,))
    np.testing.assert_allclose(got, (ln @ t(w).T).numpy(), rtol=1e-4, atol=1e-4)
    # rms_norm, softmax and layernorm read each row where the one before stored it: one launch; the GEMM
    # reads rows through pointers its K loop carries, so layernorm's result is stored for it
    assert (p.launches, p.fused) == (2, 2)
    np.testing.assert_allclose(np.asarray(r), 1 / np.sqrt((x * x).mean(1) + 1e-6), rtol=1e-4)


def test_lazy_off_and_torch_inputs_run_at_once(rng):
    x = rng.standard_normal((8, 32)).astype(np.float32)
    alloy.config.set(lazy=False)
    try:
        y = al.softmax(x)
        assert y.pending is None
    finally:
        alloy.config.set(lazy=True)
    np.testing.assert_allclose(np.asarray(y), torch.softmax(t(x), -1).numpy(), rtol=1e-6, atol=1e-7)
    ty = al.softmax(torch.from_numpy(x))
    assert isinstance(ty, torch.Tensor)
    torch.testing.assert_close(ty, torch.softmax(t(x), -1))


def test_pending_plans_keep_no_array(rng):
    shape = (12, 40)
    al.softmax(rng.standard_normal(shape).astype(np.float32)).numpy()
    x = rng.standard_normal(shape).astype(np.float32)
    ref = weakref.ref(x)
    y = al.softmax(x)  # the plan's deferred launch holds x until it runs
    np.testing.assert_allclose(np.asarray(y), torch.softmax(t(x), -1).numpy(), rtol=1e-6, atol=1e-7)
    del x
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("axes", [None, (0, 2, 1, 3), (3, 1, 0, 2), (1, 0, 2, 3), (-1, 0, 1, 2)])
@pytest.mark.parametrize("dtype", [np.int32, np.float16])
def test_transpose_matches_numpy(axes, dtype):
    y = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).astype(dtype)
    np.testing.assert_array_equal(np.asarray(al.transpose(y, axes)), np.transpose(y, axes))


def test_transpose_of_torch_and_bad_axes(rng):
    x = torch.from_numpy(rng.standard_normal((5, 7)).astype(np.float32)).to(torch.bfloat16)
    torch.testing.assert_close(al.transpose(x), x.T.contiguous())
    with pytest.raises(ValueError, match=r"al.transpose: axes \(0, 0\) are not a permutation"):
        al.transpose(np.zeros((2, 3)), (0, 0))


def test_transposed_views_are_read_in_place(rng):
    x = rng.standard_normal((300, 37)).astype(np.float32)
    with al.profile() as p:
        got = np.asarray(al.softmax(x.T))  # a numpy view: no transposed copy is made
    np.testing.assert_allclose(got, torch.softmax(t(x.T.copy()), -1).numpy(), rtol=1e-6, atol=1e-7)
    assert (p.launches, p.fused, p.allocations) == (1, 1, 1)
    a, w = rng.standard_normal((40, 30)).astype(np.float32), rng.standard_normal((40, 20)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(al.matmul(a.T, w)), a.T @ w, rtol=1e-5, atol=1e-5)


def test_transpose_between_pointwise_kernels_fuses(rng):
    x = rng.standard_normal((64, 50)).astype(np.float32)
    n = x.size
    with al.profile() as p:
        h = scale_shift[al.cdiv(n, 512)](x, N=n).reshape(64, 50)
        got = np.asarray(scale_shift[al.cdiv(n, 512)](al.transpose(h), N=n))
    np.testing.assert_allclose(got.reshape(50, 64), (x * 2 + 1).T * 2 + 1, rtol=1e-6)
    assert (p.launches, p.fused, p.allocations) == (1, 2, 1)


@al.kernel
def add(x, y, out: al.output, N, BLOCK: al.constexpr = 512):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) + al.load(y + offs, mask=m), mask=m)


@al.kernel
def mul(x, y, out: al.output, N, BLOCK: al.constexpr = 512):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) * al.load(y + offs, mask=m), mask=m)


def test_residual_add_of_two_pending_inputs_fuses_into_the_gemm(rng):
    x = rng.standard_normal((32, 48)).astype(np.float32)
    w = rng.standard_normal((40, 48)).astype(np.float32)
    r = rng.standard_normal((32, 40)).astype(np.float32)
    n = 32 * 40
    with al.profile() as p:
        h = al.gelu(al.dot_transpose_rhs(x, w))
        got = np.asarray(add[al.cdiv(n, 512)](h, scale_shift[al.cdiv(n, 512)](r, N=n), N=n))
    want = F.gelu(t(x) @ t(w).T) + t(r) * 2 + 1
    np.testing.assert_allclose(got.reshape(32, 40), want.numpy(), rtol=1e-5, atol=1e-5)
    assert (p.launches, p.fused, p.allocations) == (1, 3, 1)  # gelu, add and scale_shift in the GEMM's stores


def test_swiglu_of_two_gemms_fuses_what_it_can(rng):
    x = rng.standard_normal((16, 64)).astype(np.float32)
    wg, wu = (rng.standard_normal((24, 64)).astype(np.float32) for _ in range(2))
    n = 16 * 24
    with al.profile() as p:
        got = np.asarray(mul[al.cdiv(n, 512)](al.silu(al.dot_transpose_rhs(x, wg)), al.dot_transpose_rhs(x, wu), N=n))
    want = F.silu(t(x) @ t(wg).T) * (t(x) @ t(wu).T)
    np.testing.assert_allclose(got.reshape(16, 24), want.numpy(), rtol=1e-5, atol=1e-5)
    # two GEMMs cannot share a launch: one runs first; silu and mul fuse into the other's stores
    assert p.launches == 2 and p.fused == 2


def test_streamed_rows_are_lazy_too(rng):
    x = rng.standard_normal((3, 9000)).astype(np.float32)  # rows beyond one tile: the streaming kernels
    g, b = rng.random(9000).astype(np.float32), rng.random(9000).astype(np.float32)
    with al.profile() as p:
        s = al.softmax(x)
        y = al.layernorm(x, g, b)
        assert s.pending is not None and y.pending is not None
        got_s = np.asarray(scale_shift[al.cdiv(x.size, 512)](s, N=x.size))
        got_y = np.asarray(y)
    np.testing.assert_allclose(got_s.reshape(3, 9000), torch.softmax(t(x), -1).numpy() * 2 + 1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_y, F.layer_norm(t(x), (9000,), t(g), t(b)).numpy(), rtol=1e-4, atol=1e-4)
    assert p.launches == 2 and p.fused == 1  # scale_shift in the streaming softmax's stores
