"""Unsupported or ill-typed kernel code raises CompilationError naming kernel, file, line and construct."""
import inspect

import numpy as np
import pytest

import alloy as al

X = np.zeros(16, np.float32)


def _line_of(fn, needle):
    lines, first = inspect.getsourcelines(fn.fn)
    for i, text in enumerate(lines):
        if needle in text:
            return first + i
    raise AssertionError(needle)


def _compile(kernel, *args, **kw):
    return al.inspect(kernel, *args, level="tile-ir", print_ir=False, **kw)


def _expect(kernel, needle, message, *args, **kw):
    with pytest.raises(al.CompilationError) as e:
        _compile(kernel, *args, **kw)
    text = str(e.value)
    assert f"in kernel '{kernel.__name__}'" in text
    assert __file__ in text
    assert f":{_line_of(kernel, needle)}:" in text, text
    assert message in text, text
    return text


@al.kernel
def k_try(x):
    try:
        al.store(x, 1.0)
    except Exception:
        pass


@al.kernel
def k_lambda(x):
    f = lambda v: v + 1  # noqa: E731
    al.store(x, f(1.0))


@al.kernel
def k_class(x):
    class A:
        pass
    al.store(x, 1.0)


@al.kernel
def k_print(x):
    print(x)


@al.kernel
def k_undefined(x):
    al.store(x, y_not_defined)  # noqa: F821


@al.kernel
def k_dynamic_tile(x, n):
    offs = al.arange(0, n)
    al.store(x + offs, 1.0)


@al.kernel
def k_tile_if(x):
    offs = al.arange(0, 16)
    v = al.load(x + offs)
    if v > 0:
        al.store(x + offs, v)


@al.kernel
def k_bad_shapes(x):
    a = al.arange(0, 16)
    b = al.arange(0, 8)
    al.store(x + a, a + b)


@al.kernel
def k_float_ptr(x):
    al.store(x + 1.5, 1.0)


@al.kernel
def k_with(x):
    with open("f") as f:
        al.store(x, 1.0)


@al.kernel
def k_return_in_loop(x, n):
    for i in range(n):
        return


@al.kernel
def k_one_branch(x, n):
    if n > 0:
        fresh = 1.0
    al.store(x, fresh)


@al.kernel
def k_index(x):
    offs = al.arange(0, 16)
    al.store(x + offs, offs[3])


def test_try_rejected():
    _expect(k_try, "try:", "unsupported statement 'Try'")


def test_lambda_rejected():
    _expect(k_lambda, "= lambda", "unsupported expression 'Lambda'")


def test_class_rejected():
    _expect(k_class, "class A", "unsupported statement 'ClassDef'")


def test_print_rejected():
    _expect(k_print, "    print(x)", "'print' is not supported")


def test_undefined_name():
    _expect(k_undefined, "y_not_defined", "name 'y_not_defined' is not defined")


def test_dynamic_tile_shape():
    _expect(k_dynamic_tile, "al.arange(0, n)", "compile-time integer", X, 16)


def test_if_on_tile():
    _expect(k_tile_if, "if v > 0", "must be a scalar")


def test_incompatible_shapes():
    _expect(k_bad_shapes, "a + b", "incompatible tile shapes")


def test_pointer_plus_float():
    _expect(k_float_ptr, "x + 1.5", "integer offset")


def test_with_rejected():
    _expect(k_with, "with open", "unsupported statement 'With'")


def test_return_in_loop():
    with pytest.raises(al.CompilationError, match="'return' inside a loop"):
        _compile(k_return_in_loop, X, 3)


def test_variable_on_one_path():
    _expect(k_one_branch, "al.store(x, fresh)", "name 'fresh' is not defined", X, 3)


def test_integer_indexing():
    _expect(k_index, "offs[3]", "supports only ':' and None")


def test_missing_argument_is_type_error():
    with pytest.raises(TypeError, match="missing argument 'n'"):
        k_dynamic_tile[1](X)


@al.kernel
def k_with_output(x, out: al.output, N, BLOCK: al.constexpr = 16):
    offs = al.arange(0, BLOCK)
    al.store(out + offs, al.load(x + offs, mask=offs < N), mask=offs < N)


def test_output_passed_positionally_is_named():
    x, out = np.arange(16, dtype=np.float32) + 1, np.zeros(16, np.float32)
    with pytest.raises(TypeError, match=r"multiple values for argument\(s\) BLOCK .*keyword only: out="):
        k_with_output[1](x, out, 16, BLOCK=16)
    k_with_output[1](x, 16, out=out, BLOCK=16)
    np.testing.assert_array_equal(out, x)


def test_wrong_argument_type():
    with pytest.raises(TypeError, match="argument 'n'"):
        k_dynamic_tile[1](X, "three")


def test_non_contiguous_array_rejected():
    a = np.zeros((8, 8), np.float32)[:, ::2]
    with pytest.raises((TypeError, ValueError), match="x"):
        k_try[1](a)


def test_call_without_grid():
    with pytest.raises(TypeError, match=r"k_try\[grid\]"):
        k_try(X)


# ----------------------------------------------- array parameters bound to other names
@al.kernel
def k_alias(A, out: al.output, N):
    B = A
    offs = al.arange(0, 16)
    al.store(out + offs, al.load(B + offs) * 2.0)


@al.kernel
def k_loop_arrays(A, B, out: al.output, N):
    offs = al.arange(0, 16)
    acc = al.zeros((16,), dtype=al.float32)
    for p in (A, B):
        acc += al.load(p + offs)
    al.store(out + offs, acc)


@al.kernel
def k_rebind_param(A, out: al.output, N):
    A = A + 1


@al.kernel
def k_array_under_if(A, B, out: al.output, N):
    offs = al.arange(0, 16)
    p = A
    if N > 3:
        p = B
    al.store(out + offs, al.load(p + offs))


def test_array_parameter_aliases_and_unrolled_tuple_loops():
    """`B = A` and `for p in (A, B)` on array parameters compile (they used to raise a bare TypeError)."""
    x = np.arange(16, dtype=np.float32)
    y = np.arange(16, dtype=np.float32) * 10
    np.testing.assert_array_equal(np.asarray(k_alias[1](x, 16)), x * 2)
    np.testing.assert_array_equal(np.asarray(k_loop_arrays[1](x, y, 16)), x + y)


def test_rebinding_an_array_is_a_compilation_error():
    _expect(k_rebind_param, "A = A + 1", "cannot rebind array parameter 'A'", X, 16)
    _expect(k_array_under_if, "if N > 3", "'p' names array 'A' and is assigned under a runtime 'if'", X, X, 16)


# ----------------------------------------------- kernel source locations on every op
@al.kernel
def k_argmax_of_mask(x, out: al.output, N, BLOCK: al.constexpr = 16):
    offs = al.arange(0, BLOCK)
    v = al.load(x + offs)
    al.store(out, al.argmax(v > 0.0, axis=0))


def test_ops_carry_their_kernel_line_and_column():
    from alloy.compiler import tile_ir

    spec, _ = k_alias.specialize(k_alias.bind([X, 16], {}))
    ctx, module, _ = tile_ir(k_alias.source, spec)
    text = module.operation.get_asm(enable_debug_info=True)
    line = _line_of(k_alias, "al.store(out + offs")
    assert f'loc("{__file__}":{line}:26)' in text, text  # the al.load inside the store, at its column
    assert "loc(unknown)" not in text.replace("#loc = loc(unknown)", "")


def test_lowering_errors_name_the_kernel_line():
    """An op the CPU lowering rejects is reported at the kernel line that made it."""
    with pytest.raises(al.CompilationError) as e:
        k_argmax_of_mask[1](X, 16, out=np.zeros(1, np.int32))
    text = str(e.value)
    line = _line_of(k_argmax_of_mask, "al.argmax(v > 0.0")
    assert f"{__file__}:{line}: in kernel 'k_argmax_of_mask': could not lower to the CPU: tile.reduce at " \
           f"{__file__}:{line}:19: reduce over i1 is not supported" in text, text
    assert "al.store(out, al.argmax(v > 0.0, axis=0))" in text
