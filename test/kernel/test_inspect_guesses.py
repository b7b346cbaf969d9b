"""al.inspect with constexprs only (the spec's `al.inspect(kernel, level="msl", N=8192)`): parameters
without example arguments are guessed from their use, and a guess that cannot compile names them."""
import numpy as np
import pytest

import alloy as al
from alloy.frontend import example_args


@al.kernel
def matmul(A, B, C: al.output, BM: al.constexpr = 16, BN: al.constexpr = 16, BK: al.constexpr = 16):
    M, K = A.shape
    K2, N = B.shape
    rm = al.program_id(0) * BM + al.arange(0, BM)
    rn = al.program_id(1) * BN + al.arange(0, BN)
    acc = al.zeros((BM, BN), dtype=al.float32)
    for k in range(0, K, BK):
        rk = k + al.arange(0, BK)
        a = al.load(A + rm[:, None] * K + rk[None, :], mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
        b = al.load(B + rk[:, None] * N + rn[None, :], mask=(rk[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc += al.tile_dot(a, b)
    al.store(C + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


@al.kernel
def scale(x, out: al.output, alpha, N, BLOCK: al.constexpr = 256):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) * alpha, mask=m)


@al.func
def load_through(p, offs):
    return al.load(p + offs)


@al.kernel
def via_helper(src, out: al.output, N, BLOCK: al.constexpr = 16):
    offs = al.arange(0, BLOCK)
    al.store(out + offs, load_through(src, offs))


def test_guesses_read_shape_unpacking_pointers_and_float_use():
    from alloy.frontend.sources import FunctionSource

    tree = FunctionSource(matmul.fn, True).tree
    assert example_args.guess(tree, ["A", "B"]) == [example_args.ParameterGuess("A", "array", 2),
                                                    example_args.ParameterGuess("B", "array", 2)]
    tree = FunctionSource(scale.fn, True).tree
    kinds = {g.name: (g.kind, g.rank) for g in example_args.guess(tree, ["x", "alpha", "N"])}
    assert kinds == {"x": ("array", 1), "alpha": ("float", 1), "N": ("int", 1)}


@pytest.mark.parametrize("level", ["tile-ir", "msl", "vector"])
def test_inspect_with_constexprs_only(level):
    """The matmul's A and B become rank-2 float32 arrays; `alpha` a float32 scalar (it scales a load)."""
    text = al.inspect(matmul, level=level, print_ir=False)
    assert text
    ir_text = al.inspect(scale, level="tile-ir", N=8192, print_ir=False)
    assert "func.func @scale(%arg0: !tile.ptr<f32>, %arg1: i32, %arg2: !tile.ptr<f32>, %arg3: f32, %arg4: i32)" \
        in ir_text
    mm = al.inspect(matmul, level="tile-ir", print_ir=False)
    assert "func.func @matmul(%arg0: !tile.ptr<f32>, %arg1: i32, %arg2: i32, %arg3: !tile.ptr<f32>" in mm


def test_a_guess_that_does_not_compile_names_the_argument_to_pass():
    with pytest.raises(al.CompilationError) as e:
        al.inspect(via_helper, level="tile-ir", N=16, print_ir=False)
    text = str(e.value)
    assert "src (taken as int)" in text and "pass example arguments" in text, text
    x = np.zeros(16, np.float32)
    assert "tile.load" in al.inspect(via_helper, x, level="tile-ir", N=16, print_ir=False)
