"""AlloyBuffer and as_kernel_array: zero-copy views, torch and bf16 conversions, errors."""

import ml_dtypes
import numpy as np
import pytest
import torch

from alloy.runtime.buffer import AlloyBuffer, as_dtype, as_kernel_array, bfloat16


def ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", ["float32", np.float16, np.int8, np.uint64, np.bool_, "bf16", torch.float64])
def test_empty_shape_dtype_alignment(dtype):
    buf = AlloyBuffer.empty((3, 5), dtype)
    dt = as_dtype(dtype)
    assert buf.shape == (3, 5) and buf.dtype == dt and buf.nbytes == 15 * dt.itemsize
    assert buf.data_ptr % 64 == 0
    view = np.asarray(buf)
    assert view.dtype == dt and view.shape == (3, 5) and ptr(view) == buf.data_ptr
    assert len(buf) == 3 and repr(buf) == f"AlloyBuffer(shape=(3, 5), dtype={dt})"


def test_from_array_is_zero_copy_and_keeps_a_reference():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    buf = AlloyBuffer.from_array(a)
    assert buf.data_ptr == ptr(a) and buf.numpy() is a
    del a
    buf[1, 2] = -1.0
    np.testing.assert_array_equal(buf[1], [4, 5, -1, 7])
    assert np.shares_memory(np.asarray(buf), buf.numpy())


def test_from_array_copies_non_contiguous_input():
    a = np.arange(20, dtype=np.int32).reshape(4, 5)[:, ::2]
    buf = AlloyBuffer.from_array(a)
    np.testing.assert_array_equal(buf.numpy(), a)
    assert buf.numpy().flags.c_contiguous and not np.shares_memory(buf.numpy(), a)


def test_to_torch_shares_memory():
    buf = AlloyBuffer.empty(6, np.float32)
    buf[:] = 0
    t = buf.to_torch()
    t[2] = 5.0
    assert t.data_ptr() == buf.data_ptr and buf[2] == 5.0


def test_bf16_round_trip_matches_torch():
    x = np.array([0.1, -2.5, 3.14159, 1e30, -0.0, 65504.0], np.float32)
    buf = AlloyBuffer.from_array(x.astype(bfloat16))
    assert buf.dtype == bfloat16 and buf.nbytes == 12
    t = buf.to_torch()
    assert t.dtype == torch.bfloat16 and t.data_ptr() == buf.data_ptr
    expected = torch.from_numpy(x).to(torch.bfloat16)
    assert torch.equal(t.view(torch.int16), expected.view(torch.int16))
    view = np.asarray(buf)
    assert view.dtype == bfloat16 and ptr(view) == buf.data_ptr
    np.testing.assert_array_equal(view.astype(np.float32), expected.float().numpy())


def test_kernel_array_from_numpy_and_buffer():
    a = np.zeros((2, 3), np.float64)
    assert as_kernel_array(a, "x") == (ptr(a), (2, 3), np.dtype(np.float64), a)
    buf = AlloyBuffer.empty(4, np.int16)
    p, shape, dt, keep = as_kernel_array(buf, "y")
    assert (p, shape, dt, keep) == (buf.data_ptr, (4,), np.dtype(np.int16), buf)


def test_kernel_array_from_torch():
    t = torch.arange(6, dtype=torch.int32).reshape(2, 3)
    p, shape, dt, keep = as_kernel_array(t, "x")
    assert (p, shape, dt) == (t.data_ptr(), (2, 3), np.dtype(np.int32)) and keep is t
    b = torch.ones(5, dtype=torch.bfloat16)
    p, shape, dt, _ = as_kernel_array(b, "x")
    assert (p, shape, dt) == (b.data_ptr(), (5,), bfloat16)


def test_kernel_array_from_array_interface_object():
    a = np.arange(4, dtype=np.uint8)

    class Foreign:
        __array_interface__ = a.__array_interface__

    p, shape, dt, keep = as_kernel_array(Foreign(), "x")
    assert (p, shape, dt) == (ptr(a), (4,), np.dtype(np.uint8))


def test_kernel_array_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"arg 'b'.*not contiguous"):
        as_kernel_array(torch.zeros(4, 4).t(), "arg 'b'")
    with pytest.raises(ValueError, match=r"arg 'c'.*meta.*CPU tensors"):
        as_kernel_array(torch.zeros(4, device="meta"), "arg 'c'")
    with pytest.raises(ValueError, match=r"arg 'd'.*not C-contiguous"):
        as_kernel_array(np.zeros((4, 4))[:, 1], "arg 'd'")
    with pytest.raises(TypeError, match=r"arg 'e'.*complex64"):
        as_kernel_array(torch.zeros(2, dtype=torch.complex64), "arg 'e'")
    with pytest.raises(TypeError, match=r"arg 'f'.*complex128"):
        as_kernel_array(np.zeros(2, np.complex128), "arg 'f'")
    with pytest.raises(TypeError, match=r"arg 'g'.*got list"):
        as_kernel_array([1.0, 2.0], "arg 'g'")


def test_bad_buffer_requests():
    with pytest.raises(TypeError, match="complex64"):
        AlloyBuffer.empty(3, np.complex64)
    with pytest.raises(TypeError, match="not a dtype"):
        AlloyBuffer.empty(3, "nonsense")
    with pytest.raises(ValueError, match="non-negative"):
        AlloyBuffer.empty((2, -1), np.float32)
    with pytest.raises(TypeError, match="object"):
        AlloyBuffer.from_array(np.array([None, 1]))
    assert as_dtype("bfloat16") is bfloat16 and bfloat16 == np.dtype(ml_dtypes.bfloat16)


def test_language_dtypes_are_accepted():
    import alloy

    assert AlloyBuffer.empty(4, alloy.bfloat16).dtype == bfloat16
    assert AlloyBuffer.empty(4, alloy.int16).dtype == np.int16


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_from_torch_is_zero_copy(dtype):
    t = torch.arange(6, dtype=dtype).reshape(2, 3)
    buf = AlloyBuffer.from_array(t)
    assert buf.data_ptr == t.data_ptr() and buf.shape == (2, 3) and buf.dtype == as_dtype(dtype)
    assert torch.equal(buf.to_torch(), t)
