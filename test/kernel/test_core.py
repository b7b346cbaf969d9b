"""Op-level numerical tests of the kernel language on the CPU target (in the style of Triton's test_core).

Each test compiles small kernels, runs them over ragged sizes (masks on the
tail) and compares against numpy.
"""
import math

import ml_dtypes
import numpy as np
import pytest

import alloy as al

rng = np.random.default_rng(0)
FLOATS = ["float32", "float16"]
INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"]


def _rand(n, dtype):
    if dtype.startswith("float") or dtype == "bfloat16":
        return (rng.standard_normal(n) * 2).astype(dtype)
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -100), min(info.max, 100)
    return rng.integers(lo, hi, size=n).astype(dtype)


# ------------------------------------------------------------------ unary math
@al.kernel
def unary(x, y: al.output, N, OP: al.constexpr, BLOCK: al.constexpr = 128):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    v = al.load(x + offs, mask=m, other=1)
    if OP == "exp":
        r = al.exp(v)
    elif OP == "exp2":
        r = al.exp2(v)
    elif OP == "log":
        r = al.log(al.abs(v) + 0.5)
    elif OP == "log2":
        r = al.log2(al.abs(v) + 0.5)
    elif OP == "sqrt":
        r = al.sqrt(al.abs(v))
    elif OP == "rsqrt":
        r = al.rsqrt(al.abs(v) + 0.5)
    elif OP == "sin":
        r = al.sin(v)
    elif OP == "cos":
        r = al.cos(v)
    elif OP == "tanh":
        r = al.tanh(v)
    elif OP == "erf":
        r = al.erf(v)
    elif OP == "sigmoid":
        r = al.sigmoid(v)
    elif OP == "abs":
        r = al.abs(v)
    elif OP == "floor":
        r = al.floor(v)
    elif OP == "ceil":
        r = al.ceil(v)
    else:
        r = -v
    al.store(y + offs, r, mask=m)


_erf = np.vectorize(math.erf)
UNARY_REF = {
    "exp": np.exp, "exp2": np.exp2, "log": lambda v: np.log(np.abs(v) + 0.5),
    "log2": lambda v: np.log2(np.abs(v) + 0.5), "sqrt": lambda v: np.sqrt(np.abs(v)),
    "rsqrt": lambda v: 1 / np.sqrt(np.abs(v) + 0.5), "sin": np.sin, "cos": np.cos, "tanh": np.tanh,
    "erf": _erf, "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "abs": np.abs, "floor": np.floor,
    "ceil": np.ceil, "neg": np.negative,
}


@pytest.mark.parametrize("op", sorted(UNARY_REF))
@pytest.mark.parametrize("dtype", FLOATS)
def test_unary_math(op, dtype):
    n = 1000
    x = _rand(n, dtype)
    y = np.asarray(unary[al.cdiv(n, 128)](x, n, OP=op))
    assert y.shape == (n,) and y.dtype == np.dtype(dtype)
    ref = UNARY_REF[op](x.astype(np.float64))
    tol = 2e-3 if dtype == "float16" else 2e-6
    np.testing.assert_allclose(y.astype(np.float64), ref, rtol=tol * 5, atol=tol)


# ------------------------------------------------------------------ binary operators
@al.kernel
def binary(x, y, z: al.output, N, OP: al.constexpr, BLOCK: al.constexpr = 64):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    a = al.load(x + offs, mask=m, other=1)
    b = al.load(y + offs, mask=m, other=1)
    if OP == "add":
        r = a + b
    elif OP == "sub":
        r = a - b
    elif OP == "mul":
        r = a * b
    elif OP == "floordiv":
        r = a // b
    elif OP == "mod":
        r = a % b
    elif OP == "and":
        r = a & b
    elif OP == "or":
        r = a | b
    elif OP == "xor":
        r = a ^ b
    elif OP == "maximum":
        r = al.maximum(a, b)
    elif OP == "minimum":
        r = al.minimum(a, b)
    elif OP == "lt":
        r = al.where(a < b, a, b)
    elif OP == "ge":
        r = al.where(a >= b, a, b)
    elif OP == "eq":
        r = al.where(a == b, a + 1, a)
    else:
        r = a / b
    al.store(z + offs, r, mask=m)


INT_OPS = ["add", "sub", "mul", "floordiv", "mod", "and", "or", "xor", "maximum", "minimum", "lt", "ge", "eq"]
FLOAT_OPS = ["add", "sub", "mul", "truediv", "maximum", "minimum", "lt", "ge", "mod"]
_NP = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "floordiv": np.floor_divide, "mod": np.mod,
       "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor, "maximum": np.maximum,
       "minimum": np.minimum, "lt": lambda a, b: np.where(a < b, a, b), "ge": lambda a, b: np.where(a >= b, a, b),
       "eq": lambda a, b: np.where(a == b, a + 1, a), "truediv": np.true_divide}


@pytest.mark.parametrize("op", INT_OPS)
@pytest.mark.parametrize("dtype", ["int32", "int8", "uint8", "int64", "uint32"])
def test_binary_int(op, dtype):
    n = 300
    a, b = _rand(n, dtype), _rand(n, dtype)
    if op in ("floordiv", "mod"):
        b[b == 0] = 3
    with np.errstate(over="ignore"):
        ref = _NP[op](a, b).astype(dtype)
    z = np.asarray(binary[al.cdiv(n, 64)](a, b, n, OP=op))
    assert z.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(z, ref)


@pytest.mark.parametrize("op", FLOAT_OPS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_binary_float(op, dtype):
    n = 300
    a, b = _rand(n, dtype), _rand(n, dtype)
    b[np.abs(b) < 0.1] = 0.5
    ref = _NP[op](a.astype(np.float64), b.astype(np.float64))
    z = np.asarray(binary[al.cdiv(n, 64)](a, b, n, OP=op))
    tol = 3e-3 if dtype == "float16" else 1e-6
    np.testing.assert_allclose(z.astype(np.float64), ref, rtol=tol, atol=tol)


@al.kernel
def mixed(x, n_i, z: al.output, N, BLOCK: al.constexpr = 64):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    a = al.load(x + offs, mask=m)          # float16
    i = al.load(n_i + offs, mask=m)        # int32
    al.store(z + offs, a * i + 1, mask=m)  # promotes to float16


def test_promotion_int_times_half():
    n = 100
    a = _rand(n, "float16")
    i = _rand(n, "int32")
    z = np.asarray(mixed[2](a, i, n))
    assert z.dtype == np.float16
    np.testing.assert_allclose(z, (a * i.astype(np.float16) + 1), rtol=2e-3, atol=2e-2)


# ------------------------------------------------------------------ casts
@al.kernel
def cast_kernel(x, y: al.output, N, TO: al.constexpr, BLOCK: al.constexpr = 64):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(y + offs, al.load(x + offs, mask=m).to(TO), mask=m)


@pytest.mark.parametrize("src,dst", [("float32", "float16"), ("float16", "float32"), ("float32", "int32"),
                                     ("int32", "float32"), ("int8", "int32"), ("uint8", "int32"),
                                     ("int32", "int8"), ("float32", "bfloat16"), ("bfloat16", "float32"),
                                     ("float32", "uint8"), ("int64", "float64"), ("float32", "bool")])
def test_cast(src, dst):
    n = 200
    x = _rand(n, "float32") * 10 if src == "bfloat16" else _rand(n, src)
    if src == "bfloat16":
        x = x.astype(ml_dtypes.bfloat16)
    if dst == "uint8":
        x = np.abs(x)
    y = np.asarray(cast_kernel[al.cdiv(n, 64)](x, n, TO=getattr(al, dst if dst != "bool" else "bool_")))
    ref = x.astype(ml_dtypes.bfloat16 if dst == "bfloat16" else dst)
    if dst in ("int32", "int8", "uint8") and src.startswith("float"):
        ref = np.trunc(x.astype(np.float64)).astype(dst)
    np.testing.assert_array_equal(y.astype(np.float64), ref.astype(np.float64))


SATURATING_CASTS = [("float32", "int32"), ("float32", "int64"), ("float64", "int32"), ("float16", "int8"),
                    ("float32", "uint8"), ("float64", "uint32"), ("bfloat16", "int16")]


def saturating_cast_case(src, dst):
    """(input array, expected output list): NaN, infinities, values past both bounds, the bounds, in-range."""
    info = np.iinfo(dst)
    vals = [np.nan, np.inf, -np.inf, 1e30, -1e30, float(info.max) * 4, float(info.min) * 4 - 8,
            float(info.max), float(info.min), 0.0, -0.5, 3.75, -3.75]
    with np.errstate(over="ignore"):  # 1e30 becomes inf in float16
        x = np.array(vals, np.float64).astype(ml_dtypes.bfloat16 if src == "bfloat16" else np.dtype(src))
    xf = [float(v) for v in x.astype(np.float64)]  # Python float vs int comparisons are exact
    ref = [0 if v != v else int(info.max) if v >= int(info.max) + 1 else int(info.min) if v <= int(info.min) - 1
           else int(v) for v in xf]
    return x, ref


@pytest.mark.parametrize("src,dst", SATURATING_CASTS)
def test_float_to_int_saturates(src, dst):
    """Out-of-range values clamp to the integer type's bounds and NaN gives 0 (defined on every
    target; LLVM's plain fptosi would be poison)."""
    x, ref = saturating_cast_case(src, dst)
    assert np.asarray(cast_kernel[1](x, len(x), TO=getattr(al, dst))).tolist() == ref


# ------------------------------------------------------------------ reductions
@al.kernel
def reduce_rows(x, out: al.output, R, C, KIND: al.constexpr, BR: al.constexpr, BC: al.constexpr,
                AXIS: al.constexpr, FILL: al.constexpr = None):
    """KIND-reduce a ragged R x C array along AXIS; masked elements are FILL (default: neutral)."""
    r = al.arange(0, BR)
    c = al.arange(0, BC)
    m = (r[:, None] < R) & (c[None, :] < C)
    fill = (0 if KIND == "sum" else (-1e30 if KIND in ("max", "argmax") else 1e30)) if FILL is None else FILL
    v = al.load(x + r[:, None] * C + c[None, :], mask=m, other=fill)
    if KIND == "sum":
        s = al.sum(v, axis=AXIS)
    elif KIND == "max":
        s = al.max(v, axis=AXIS)
    elif KIND == "min":
        s = al.min(v, axis=AXIS)
    elif KIND == "argmax":
        s = al.argmax(v, axis=AXIS)
    else:
        s = al.argmin(v, axis=AXIS)
    idx = r if AXIS == 1 else c
    lim = R if AXIS == 1 else C
    al.store(out + idx, s, mask=idx < lim)


@pytest.mark.parametrize("kind", ["sum", "max", "min", "argmax", "argmin"])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_reduce(kind, axis, dtype):
    R, C = 13, 37
    x = _rand(R * C, dtype).reshape(R, C)
    out = np.asarray(reduce_rows[1](x, R, C, KIND=kind, BR=16, BC=64, AXIS=axis))
    ref = {"sum": np.sum, "max": np.max, "min": np.min, "argmax": np.argmax, "argmin": np.argmin}[kind](x, axis=axis)
    if kind == "sum" and dtype == "float32":
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-4)
    else:
        np.testing.assert_array_equal(out, ref)


@al.kernel
def reduce_all(x, out: al.output, N, BLOCK: al.constexpr):
    offs = al.arange(0, BLOCK)
    v = al.load(x + offs, mask=offs < N, other=0.0)
    al.store(out, al.sum(v))


def test_reduce_to_scalar():
    x = _rand(1000, "float32")
    out = np.asarray(reduce_all[1](x, 1000, BLOCK=1024))
    assert out.shape == (1,)
    np.testing.assert_allclose(out[0], x.astype(np.float64).sum(), rtol=1e-5)


# ------------------------------------------------------------------ tile_dot
@al.kernel
def dot_kernel(A, B, C: al.output, M, N, K, BM: al.constexpr, BN: al.constexpr, BK: al.constexpr):
    rm = al.program_id(0) * BM + al.arange(0, BM)
    rn = al.program_id(1) * BN + al.arange(0, BN)
    rk = al.arange(0, BK)
    acc = al.zeros((BM, BN), al.float32)
    for k in range(0, K, BK):
        a = al.load(A + rm[:, None] * K + (k + rk)[None, :], mask=(rm[:, None] < M) & ((k + rk)[None, :] < K))
        b = al.load(B + (k + rk)[:, None] * N + rn[None, :], mask=((k + rk)[:, None] < K) & (rn[None, :] < N))
        acc = al.tile_dot(a, b, acc)
    al.store(C + rm[:, None] * N + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


@pytest.mark.parametrize("M,N,K,BM,BN,BK", [(33, 47, 29, 16, 16, 8), (64, 64, 64, 32, 32, 16),
                                            (100, 20, 70, 64, 32, 32)])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_tile_dot(M, N, K, BM, BN, BK, dtype):
    A = _rand(M * K, dtype).reshape(M, K)
    B = _rand(K * N, dtype).reshape(K, N)
    C = np.asarray(dot_kernel[al.cdiv(M, BM), al.cdiv(N, BN)](A, B, M, N, K, BM=BM, BN=BN, BK=BK))
    assert C.shape == (M, N) and C.dtype == np.float32
    ref = A.astype(np.float64) @ B.astype(np.float64)
    np.testing.assert_allclose(C, ref, rtol=1e-4, atol=1e-3)


# ------------------------------------------------------------------ atomics
@al.kernel
def atomic_kernel(x, out, N, KIND: al.constexpr, NB: al.constexpr, BLOCK: al.constexpr = 64):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    v = al.load(x + offs, mask=m)
    if KIND == "add":
        al.atomic_add(out + offs % NB, v, mask=m)
    elif KIND == "max":
        al.atomic_max(out + offs % NB, v, mask=m)
    else:
        al.atomic_min(out + offs % NB, v, mask=m)


@pytest.mark.parametrize("kind", ["add", "max", "min"])
@pytest.mark.parametrize("dtype", ["int32", "float32"])
def test_atomics(kind, dtype):
    n, nb = 5000, 7
    x = _rand(n, dtype)
    init = {"add": 0, "max": -1000, "min": 1000}[kind]
    out = np.full(nb, init, dtype)
    atomic_kernel[al.cdiv(n, 64)](x, out, n, KIND=kind, NB=nb)
    ref = np.full(nb, init, np.float64)
    f = {"add": np.add, "max": np.maximum, "min": np.minimum}[kind]
    f.at(ref, np.arange(n) % nb, x.astype(np.float64))
    np.testing.assert_allclose(out, ref, rtol=1e-4)


@al.kernel
def cas_kernel(lock, counter, xchg_out):
    # each program spins until it owns the lock, bumps the counter, releases
    done = 0
    while done == 0:
        if al.atomic_cas(lock, 0, 1) == 0:
            c = al.load(counter)
            al.store(counter, c + 1)
            al.atomic_xchg(lock, 0)
            done = 1
    al.atomic_xchg(xchg_out + al.program_id(0), al.program_id(0) + 1)


def test_atomic_cas_and_xchg():
    lock = np.zeros(1, np.int32)
    counter = np.zeros(1, np.int32)
    out = np.zeros(500, np.int32)
    cas_kernel[500](lock, counter, out)
    assert counter[0] == 500 and lock[0] == 0
    np.testing.assert_array_equal(out, np.arange(1, 501))


# ------------------------------------------------------------------ 2-D loads, strides, masks
@al.kernel
def transpose(x, y: al.output, R, C, BR: al.constexpr = 16, BC: al.constexpr = 16):
    r = al.program_id(0) * BR + al.arange(0, BR)
    c = al.program_id(1) * BC + al.arange(0, BC)
    m = (r[:, None] < R) & (c[None, :] < C)
    t = al.load(x + r[:, None] * C + c[None, :], mask=m)
    al.store(y + c[None, :] * R + r[:, None], t, mask=m)


@pytest.mark.parametrize("R,C", [(1, 1), (17, 33), (64, 48)])
@pytest.mark.parametrize("dtype", ["float32", "int8", "float16"])
def test_transpose_ragged(R, C, dtype):
    x = _rand(R * C, dtype).reshape(R, C)
    y = np.asarray(transpose[al.cdiv(R, 16), al.cdiv(C, 16)](x, R, C)).reshape(C, R)
    np.testing.assert_array_equal(y, x.T)


# ------------------------------------------------------------------ control flow
@al.func
def clamp(v, lo, hi):
    return al.minimum(al.maximum(v, lo), hi)


@al.kernel
def control(x, y: al.output, N, MODE: al.constexpr):
    i = al.program_id(0)
    v = al.load(x + i)
    acc = 0.0
    k = 0
    if MODE == "loop":
        for j in range(0, 10):
            if j % 3 == 0:
                continue
            if j > 7:
                break
            acc += v * j
    elif MODE == "while":
        while k < 5:
            acc = acc + v
            k += 1
    elif MODE == "count_down":
        for j in range(10, 0, -2):
            acc = acc + j
    elif MODE == "func":
        acc = clamp(v, -1.0, 1.0)
    elif MODE == "nested":
        for a in range(6):
            if a == 1:
                continue
            b = 0
            while True:
                b += 1
                if b > a:
                    break
                acc = acc + v
            if a == 4:
                break
    else:
        if i % 2 == 0:
            acc = v
        elif i % 3 == 0:
            acc = -v
        else:
            acc = v * 10
    al.store(y + i, acc)


@pytest.mark.parametrize("mode", ["loop", "while", "count_down", "func", "nested", "branches"])
def test_control_flow(mode):
    n = 50
    x = _rand(n, "float32")
    y = np.asarray(control[n](x, n, MODE=mode))
    i = np.arange(n)
    ref = {
        "loop": x * sum(j for j in (1, 2, 4, 5, 7)),
        "while": x * 5,
        "count_down": np.full(n, 10 + 8 + 6 + 4 + 2, np.float32),
        "func": np.clip(x, -1, 1),
        "nested": x * (0 + 2 + 3 + 4),
        "branches": np.where(i % 2 == 0, x, np.where(i % 3 == 0, -x, x * 10)),
    }[mode]
    np.testing.assert_allclose(y, ref, rtol=1e-6)


@al.kernel
def early_exit(x, y, N):
    i = al.program_id(0)
    if i >= N:
        return
    al.store(y + i, al.load(x + i) * 2)


def test_early_return():
    x = _rand(10, "float32")
    y = np.zeros(12, np.float32)
    early_exit[12](x, y, 10)
    np.testing.assert_allclose(y[:10], x * 2)
    assert (y[10:] == 0).all()


# ------------------------------------------------------------------ interop
def test_torch_tensors_bound_without_copy():
    torch = pytest.importorskip("torch")
    x = torch.arange(10, dtype=torch.float32)
    y = torch.zeros(10, dtype=torch.float32)
    early_exit[10](x, y, 10)
    assert torch.equal(y, x * 2)  # written in place: bound without a copy


def test_alloybuffer_roundtrip():
    x = _rand(100, "float32")
    b = unary[1](x, 100, OP="abs")
    assert isinstance(b, al.AlloyBuffer)
    assert b.shape == (100,) and b.dtype == np.float32
    np.testing.assert_array_equal(b.numpy(), np.abs(x))
    assert b[3] == abs(x[3])
    c = unary[1](b, 100, OP="neg")  # an AlloyBuffer is a valid input
    np.testing.assert_array_equal(np.asarray(c), -np.abs(x))


def test_explicit_output_overrides_inference():
    x = _rand(100, "float32")
    out = np.zeros(128, np.float32)
    res = unary[1](x, 100, OP="neg", y=out)
    assert res is out  # a given output is written in place and returned
    np.testing.assert_array_equal(out[:100], -x)
