"""Lazy launches and automatic fusion on the CPU target (runtime/lazy.py, runtime/fusion.py): chains of
kernels fuse into one launch where the tile IR proves the same iteration space, run unfused (and right)
where it does not, and launches that write their inputs stay eager and in order. al.profile counts what
ran; al.inspect shows the fused kernel."""
import numpy as np
import pytest

import alloy as al
import alloy.config

N = 10_007
GRID = al.cdiv(N, 256)


@al.kernel
def scale(x, out: al.output, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) * 2.0, mask=m)


@al.kernel
def bias(x, out: al.output, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) + 1.0, mask=m)


@al.kernel
def relu(x, out: al.output, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.maximum(al.load(x + offs, mask=m), 0.0), mask=m)


@al.kernel
def add(x, y, out: al.output, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) + al.load(y + offs, mask=m), mask=m)


@al.kernel
def shift_left(x, out: al.output, N, BLOCK: al.constexpr = 256):
    """Reads the next element: another program's, for the last lane of each block."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N - 1
    al.store(out + offs, al.load(x + offs + 1, mask=m), mask=m)


@al.kernel
def bias_short(x, out: al.output, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N - 1
    al.store(out + offs, al.load(x + offs, mask=m) + 1.0, mask=m)


@al.kernel
def increment_in_place(x, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(x + offs, al.load(x + offs, mask=m) + 1.0, mask=m)


@pytest.fixture
def x():
    return np.random.default_rng(3).standard_normal(N).astype(np.float32)


def test_chain_fuses_into_one_launch(x):
    with al.profile() as p:
        t1 = scale[GRID](x, N=N)
        t2 = bias[GRID](t1, N=N)
        r = relu[GRID](t2, N=N)
        assert r.pending is not None and (p.launches, p.allocations) == (0, 0)
        got = np.asarray(r)
    np.testing.assert_array_equal(got, np.maximum(x * 2 + 1, 0))
    assert (p.launches, p.fused, p.allocations) == (1, 2, 1)
    assert t1.pending is not None and t2.pending is not None  # intermediates never allocated
    with al.profile() as q:
        np.testing.assert_array_equal(np.asarray(t2), x * 2 + 1)  # computed when read, fused again
    assert (q.launches, q.fused, q.allocations) == (1, 1, 1)


def test_inspect_shows_the_fused_kernel(x):
    r = relu[GRID](bias[GRID](scale[GRID](x, N=N), N=N), N=N)
    ir = al.inspect(r, print_ir=False)
    assert "func.func @fused_scale_bias_relu" in ir
    assert ir.count('"tile.store"') == 1 and ir.count('"tile.load"') == 1
    assert r.pending is not None  # inspecting runs nothing
    np.testing.assert_array_equal(np.asarray(r), np.maximum(x * 2 + 1, 0))


def test_cross_program_read_fuses_as_a_prologue(x):
    with al.profile() as p:
        r = bias_short[GRID](shift_left[GRID](scale[GRID](x, N=N), N=N), N=N)
        got = np.asarray(r)
    np.testing.assert_array_equal(got, x[1:] * 2 + 1)
    # scale -> shift_left reads a neighbour (another program's, at block edges): scale is pointwise, so
    # it is recomputed at shift_left's offsets; shift_left -> bias_short shares the iteration space
    assert (p.launches, p.fused) == (1, 2)


def test_different_masks_and_grids_fuse_as_prologues(x):
    with al.profile() as p:
        got = np.asarray(bias[GRID](shift_left[GRID](x, N=N), N=N - 1))
        t = scale[GRID + 3](x, N=N)
        got2 = np.asarray(bias[GRID](t, N=N))
    np.testing.assert_array_equal(got, x[1:] + 1)
    np.testing.assert_array_equal(got2, x * 2 + 1)
    assert (p.launches, p.fused) == (2, 2)


@al.kernel
def scale_to_evens(x, out: al.output, N, BLOCK: al.constexpr = 256):
    """Stores every other element of its output: the odd ones stay 0."""
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs * 2, al.load(x + offs, mask=m) * 2.0, mask=m)


def test_a_producer_that_leaves_elements_unwritten_is_not_fused(x):
    with al.profile() as p:
        t = scale_to_evens[GRID](x, N=N)
        got = np.asarray(bias[al.cdiv(2 * N - 1, 256)](t, N=2 * N - 1))
    want = np.ones(2 * N - 1, np.float32)
    want[::2] += x * 2
    np.testing.assert_array_equal(got, want)
    assert (p.launches, p.fused) == (2, 0)


def test_a_diamond_fuses_into_one_launch(x):
    with al.profile() as p:
        t = scale[GRID](x, N=N)
        got = np.asarray(add[GRID](bias[GRID](t, N=N), relu[GRID](t, N=N), N=N))
    np.testing.assert_allclose(got, (x * 2 + 1) + np.maximum(x * 2, 0), rtol=1e-6)
    assert (p.launches, p.fused, p.allocations) == (1, 3, 1)  # t feeds both branches in the same programs


def test_reading_through_numpy_functions_realizes(x):
    r = scale[GRID](x, N=N)
    assert np.isclose(np.sum(r), (x * 2).sum(dtype=np.float64), rtol=1e-4)
    assert r.pending is None and r[5] == x[5] * 2


def test_a_launch_that_writes_an_input_is_eager_and_ordered(x):
    y = x.copy()
    with al.profile() as p:
        t = scale[GRID](y, N=N)  # pending: reads y
        increment_in_place[GRID](y, N=N)  # eager (writes y): runs the pending launch first
        assert p.launches == 2 and t.pending is None
    np.testing.assert_array_equal(y, x + 1)
    np.testing.assert_array_equal(np.asarray(t), x * 2)


def test_given_outputs_and_lazy_off_run_now(x):
    out = np.zeros(N, np.float32)
    with al.profile() as p:
        scale[GRID](x, N=N, out=out)
    assert p.launches == 1 and np.array_equal(out, x * 2)
    old = alloy.config.get().lazy
    alloy.config.set(lazy=False)
    try:
        with al.profile() as p:
            r = relu[GRID](scale[GRID](x, N=N), N=N)
            assert r.pending is None and (p.launches, p.fused, p.allocations) == (2, 0, 2)
    finally:
        alloy.config.set(lazy=old)
    np.testing.assert_array_equal(np.asarray(r), np.maximum(x * 2, 0))


def test_synchronize_runs_what_is_pending(x):
    r = bias[GRID](scale[GRID](x, N=N), N=N)
    al.synchronize()
    assert r.pending is None
    np.testing.assert_array_equal(r.numpy(), x * 2 + 1)


def test_launch_errors_are_raised_at_the_launch(x):
    @al.kernel
    def broken(x, out: al.output, N, BLOCK: al.constexpr = 256):
        offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
        al.store(out + offs, al.load(x + offs) @ 2.0)

    t = scale[GRID](x, N=N)
    with pytest.raises(al.CompilationError, match="in kernel 'broken'"):
        broken[GRID](t, N=N)
    np.testing.assert_array_equal(np.asarray(t), x * 2)


def test_bad_lazy_setting_and_inspect_of_a_realized_buffer(x):
    with pytest.raises(TypeError, match="Config.lazy: expected a bool"):
        alloy.config.set(lazy="yes")
    r = scale[GRID](x, N=N)
    np.asarray(r)
    with pytest.raises(ValueError, match="has its contents already"):
        al.inspect(r, print_ir=False)


@al.kernel(writes_all_outputs=True)
def transpose(x, out: al.output, R, C, BR: al.constexpr = 16, BC: al.constexpr = 16):
    """out (C, R) = x (R, C) transposed, one BR x BC block per program."""
    rm = al.program_id(0) * BR + al.arange(0, BR)
    rn = al.program_id(1) * BC + al.arange(0, BC)
    m = (rm[:, None] < R) & (rn[None, :] < C)
    v = al.load(x + rm[:, None] * C + rn[None, :], mask=m)
    al.store(out + rn[None, :] * R + rm[:, None], v, mask=m)


def test_pointwise_kernels_fuse_around_a_2d_transpose(x):
    rows, cols = 97, 103
    grid = al.cdiv(rows * cols, 256)
    with al.profile() as p:
        t = transpose[(al.cdiv(rows, 16), al.cdiv(cols, 16))](scale[grid](x[:rows * cols], N=rows * cols), rows, cols)
        got = np.asarray(bias[grid](t, N=rows * cols))
    # scale is recomputed at the transpose's 2-D load offsets; bias at its 2-D store offsets
    np.testing.assert_array_equal(got.reshape(cols, rows), (x[:rows * cols] * 2).reshape(rows, cols).T + 1)
    assert (p.launches, p.fused, p.allocations) == (1, 2, 1)


def test_an_undeclared_producer_gets_no_epilogue(x):
    @al.kernel
    def transpose_undeclared(x, out: al.output, R, C, BR: al.constexpr = 16, BC: al.constexpr = 16):
        rm = al.program_id(0) * BR + al.arange(0, BR)
        rn = al.program_id(1) * BC + al.arange(0, BC)
        m = (rm[:, None] < R) & (rn[None, :] < C)
        al.store(out + rn[None, :] * R + rm[:, None], al.load(x + rm[:, None] * C + rn[None, :], mask=m), mask=m)

    rows, cols = 40, 50
    with al.profile() as p:
        t = transpose_undeclared[(3, 4)](x[:rows * cols].reshape(rows, cols).copy(), rows, cols)
        got = np.asarray(bias[al.cdiv(rows * cols, 256)](t, N=rows * cols))
    np.testing.assert_array_equal(got.reshape(cols, rows), x[:rows * cols].reshape(rows, cols).T + 1)
    assert (p.launches, p.fused) == (2, 0)  # nothing proves it stores every element of its output
