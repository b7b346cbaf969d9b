"""Launch plans of the builtins (alloy.std.plans): a repeat call with arrays like an earlier one's rebinds a
prepared launch; results are checked against numpy on every call, with new arrays each time."""
import gc
import threading
import weakref

import numpy as np
import pytest

import alloy as al
from alloy.std import activations, gemm, normalization, row_softmax
from alloy.std.plans import Plans


@pytest.fixture(autouse=True)
def fresh_plans(monkeypatch):
    for table in (gemm.PLANS, normalization.PLANS, activations.PLANS):
        for name in table:
            monkeypatch.setitem(table, name, Plans())
    monkeypatch.setattr(row_softmax, "PLANS", Plans())


def _pair(rng, m, n, k, dtype=np.float32):
    return rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((n, k)).astype(dtype)


def test_repeat_calls_rebind_new_arrays(monkeypatch):
    rng = np.random.default_rng(0)
    first = _pair(rng, 20, 30, 40)
    np.testing.assert_allclose(np.asarray(al.dot_transpose_rhs(*first)), first[0] @ first[1].T, rtol=1e-5, atol=1e-5)
    assert len(gemm.PLANS["dot_transpose_rhs"]._plans) == 1

    def no_full_path(*args, **kwargs):
        raise AssertionError("the repeat call took the full path")

    with monkeypatch.context() as patched:
        patched.setattr(gemm, "Call", no_full_path)
        for _ in range(3):  # new arrays each time: a stale binding would give the first call's result
            a, b = _pair(rng, 20, 30, 40)
            out = al.dot_transpose_rhs(a, b)
            assert isinstance(out, al.AlloyBuffer) and out.shape == (20, 30)
            np.testing.assert_allclose(np.asarray(out), a @ b.T, rtol=1e-5, atol=1e-5)
        a = rng.standard_normal((3, 5, 40)).astype(np.float32)  # another signature: the full path first
        with pytest.raises(AssertionError, match="full path"):
            al.dot_transpose_rhs(a, first[1])
    for _ in range(2):  # batched A against a 2-D B is one launch over its rows: planned, reshaped back
        a = rng.standard_normal((3, 5, 40)).astype(np.float32)
        out = al.dot_transpose_rhs(a, first[1])
        assert out.shape == (3, 5, 30)
        np.testing.assert_allclose(np.asarray(out), a @ first[1].T, rtol=1e-5, atol=1e-5)
    assert len(gemm.PLANS["dot_transpose_rhs"]._plans) == 2


def test_plans_per_signature_and_what_they_keep():
    rng = np.random.default_rng(1)
    for m in (8, 9):
        for dtype in (np.float32, np.float16):
            a, b = _pair(rng, m, 16, 24, dtype)
            for _ in range(2):
                got = np.asarray(al.matmul(a, b.T.copy())).astype(np.float64)
                np.testing.assert_allclose(got, a.astype(np.float64) @ b.T, rtol=2e-2, atol=2e-2)
    assert len(gemm.PLANS["matmul"]._plans) == 4
    a, b = _pair(rng, 8, 16, 24)
    held = weakref.ref(a)
    np.asarray(al.matmul(a, b.T.copy()))
    del a
    gc.collect()
    assert held() is None  # a plan keeps no array of the calls it served


def test_views_and_buffers_take_the_full_path():
    rng = np.random.default_rng(2)
    a, b = _pair(rng, 16, 16, 32)
    for lhs in (a[:, :16], al.AlloyBuffer.from_array(a[:, :16].copy())):  # a strided view; an AlloyBuffer
        for _ in range(2):
            np.testing.assert_allclose(np.asarray(al.dot_transpose_rhs(lhs, b[:, :16].copy())),
                                       np.asarray(lhs) @ b[:, :16].T, rtol=1e-5, atol=1e-5)
    assert len(gemm.PLANS["dot_transpose_rhs"]._plans) == 0  # no plan for a view or an AlloyBuffer


def test_torch_inputs_get_torch_results_and_threads_share_a_plan():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    pairs = [tuple(torch.from_numpy(x) for x in _pair(rng, 12, 20, 28)) for _ in range(8)]
    first = al.dot_transpose_rhs(*pairs[0])
    assert isinstance(first, torch.Tensor)
    results = {}

    def work(i):
        for _ in range(20):
            results[i] = al.dot_transpose_rhs(*pairs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (a, b) in enumerate(pairs):
        assert isinstance(results[i], torch.Tensor)
        torch.testing.assert_close(results[i], a @ b.T, rtol=1e-5, atol=1e-5)
    assert len(gemm.PLANS["dot_transpose_rhs"]._plans) == 1


def _layernorm(x, w, b, eps):
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    rstd = 1 / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps)
    return (x - mean) * rstd * w + b, mean[..., 0], rstd[..., 0]


def test_row_builtins_repeat_calls():
    """softmax, layernorm (with and without its statistics) and rms_norm: planned after the first call of a
    signature; new arrays each call; eps and the axis are part of the plan."""
    rng = np.random.default_rng(4)
    w, b = rng.standard_normal(48).astype(np.float32), rng.standard_normal(48).astype(np.float32)
    for _ in range(3):
        x = rng.standard_normal((2, 5, 48)).astype(np.float32)
        e = np.exp(x - x.max(-1, keepdims=True))
        np.testing.assert_allclose(np.asarray(al.softmax(x)), e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)
        ex = np.exp(x - x.max(1, keepdims=True))
        np.testing.assert_allclose(np.asarray(al.softmax(x, axis=1)), ex / ex.sum(1, keepdims=True), rtol=1e-5,
                                   atol=1e-6)
        for eps in (1e-5, 0.5):
            y, mean, rstd = al.layernorm(x, w, b, eps=eps, return_stats=True)
            ref = _layernorm(x, w, b, eps)
            for got, want in zip((y, mean, rstd), ref):
                assert got.shape == want.shape
                np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(np.asarray(al.layernorm(x, w, b, eps=eps)), ref[0], rtol=1e-4, atol=1e-5)
        y, r = al.rms_norm(x, w, eps=1e-6)
        rms = 1 / np.sqrt((x.astype(np.float64) ** 2).mean(-1) + 1e-6)
        np.testing.assert_allclose(np.asarray(y), x * rms[..., None] * w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.asarray(r), rms, rtol=1e-5)
    assert len(row_softmax.PLANS._plans) == 1  # axis=1 moves the rows: not planned
    assert len(normalization.PLANS["layernorm"]._plans) == 4 and len(normalization.PLANS["rms_norm"]._plans) == 1


def test_row_builtins_planned_with_torch_tensors():
    torch = pytest.importorskip("torch")
    w, b = torch.randn(40), torch.randn(40)
    for _ in range(3):
        x = torch.randn(6, 40)
        y = al.layernorm(x, w, b)
        assert isinstance(y, torch.Tensor)
        torch.testing.assert_close(y, torch.nn.functional.layer_norm(x, (40,), w, b), rtol=1e-4, atol=1e-5)
        y, rstd = al.rms_norm(x, w)
        assert isinstance(y, torch.Tensor) and isinstance(rstd, torch.Tensor) and rstd.shape == (6,)
        torch.testing.assert_close(y, torch.nn.functional.rms_norm(x, (40,), w, eps=1e-6), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(al.softmax(x), torch.softmax(x, -1), rtol=1e-5, atol=1e-6)
    assert len(normalization.PLANS["layernorm"]._plans) == 1 and len(row_softmax.PLANS._plans) == 1


def test_transposed_views_read_as_stored():
    """matmul(A, W.T) is dot_transpose_rhs(A, W) and dot_transpose_rhs(A, W.T) is matmul(A, W): the
    transposed view is not copied (the other GEMM's plan is the one made); messages show B as passed."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    a, w = rng.standard_normal((9, 24)).astype(np.float32), rng.standard_normal((13, 24)).astype(np.float32)
    for _ in range(2):
        np.testing.assert_allclose(np.asarray(al.matmul(a, w.T)), a @ w.T, rtol=1e-5, atol=1e-5)
    assert len(gemm.PLANS["dot_transpose_rhs"]._plans) == 1 and not gemm.PLANS["matmul"]._plans
    v = rng.standard_normal((24, 13)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(al.dot_transpose_rhs(a, v.T)), a @ v, rtol=1e-5, atol=1e-5)
    assert len(gemm.PLANS["matmul"]._plans) == 1
    ta, tw = torch.from_numpy(a), torch.from_numpy(w)
    torch.testing.assert_close(al.matmul(ta, tw.t()), ta @ tw.t(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"al.matmul: A \(9, 24\) and B \(23, 13\) do not agree on K"):
        al.matmul(a, rng.standard_normal((13, 23)).astype(np.float32).T)


def test_activations_planned_per_mode():
    from math import erf

    rng = np.random.default_rng(6)
    gelu = np.vectorize(lambda v: 0.5 * v * (1 + erf(v / np.sqrt(2))))
    for _ in range(3):
        x = rng.standard_normal((3, 7, 5)).astype(np.float32)
        np.testing.assert_allclose(np.asarray(al.silu(x)), x / (1 + np.exp(-x)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(al.gelu(x)), gelu(x.astype(np.float64)), rtol=1e-5, atol=1e-6)
        tanh = 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))
        np.testing.assert_allclose(np.asarray(al.gelu(x, approximate="tanh")), tanh, rtol=1e-5, atol=1e-6)
    assert len(activations.PLANS["silu"]._plans) == 1 and len(activations.PLANS["gelu"]._plans) == 2


def test_rope_and_cross_entropy_plans_match_the_full_path(monkeypatch):
    """The planned call gives what the full path (checked against numpy in test_builtins) gives, on new
    arrays each call; the options (base, rotary_dim, interleaved, ignore_index) are part of the plan."""
    from alloy.std import losses, rotary

    rng = np.random.default_rng(7)
    monkeypatch.setattr(rotary, "PLANS", Plans())
    monkeypatch.setattr(losses, "PLANS", Plans())

    def full_path(fn, *args, **kwargs):
        with monkeypatch.context() as patched:
            patched.setattr(rotary, "PLANS", Plans())
            patched.setattr(losses, "PLANS", Plans())
            return np.asarray(fn(*args, **kwargs))

    for _ in range(3):
        x = rng.standard_normal((6, 4, 16)).astype(np.float32)
        pos = rng.integers(0, 100, 6).astype(np.int64)
        for options in (dict(), dict(base=500.0, rotary_dim=8, interleaved=True)):
            np.testing.assert_array_equal(np.asarray(al.rope(x, pos, **options)), full_path(al.rope, x, pos, **options))
        logits = rng.standard_normal((5, 33)).astype(np.float32)
        labels = rng.integers(0, 33, 5).astype(np.int64)
        labels[1] = -100
        got = np.asarray(al.cross_entropy(logits, labels))
        np.testing.assert_array_equal(got, full_path(al.cross_entropy, logits, labels))
        assert got[1] == 0
        np.testing.assert_array_equal(np.asarray(al.cross_entropy(logits, labels, ignore_index=3)),
                                      full_path(al.cross_entropy, logits, labels, ignore_index=3))
    assert len(rotary.PLANS._plans) == 2 and len(losses.PLANS._plans) == 2


def test_attention_plan_matches_the_full_path(monkeypatch):
    from alloy.std import flash_attention

    rng = np.random.default_rng(8)
    monkeypatch.setattr(flash_attention, "PLANS", Plans())

    def full_path(*args, **kwargs):
        with monkeypatch.context() as patched:
            patched.setattr(flash_attention, "PLANS", Plans())
            return np.asarray(al.attention(*args, **kwargs))

    for _ in range(3):
        q = rng.standard_normal((1, 4, 9, 16)).astype(np.float32)
        k, v = (rng.standard_normal((1, 2, 11, 16)).astype(np.float32) for _ in range(2))
        for options in (dict(), dict(causal=True, scale=0.3)):
            np.testing.assert_array_equal(np.asarray(al.attention(q, k, v, **options)),
                                          full_path(q, k, v, **options))
    assert len(flash_attention.PLANS._plans) == 2


def test_torch_arrays_keep_resizable_storage():
    """A planned call binds torch tensors as they are: a numpy view would make torch mark their storage
    unresizable (FSDP frees and regrows parameter storage), and results are torch-owned tensors."""
    torch = pytest.importorskip("torch")
    x, w, b = torch.randn(6, 64), torch.randn(64), torch.randn(64)
    for _ in range(2):  # the first call records the plan, the second runs it
        y = al.layernorm(x, w, b)
        z = al.dot_transpose_rhs(x, x)
    for t in (x, w, y, z):
        t.untyped_storage().resize_(0)  # raises for an unresizable storage
