"""Output shapes are inferred from store addresses and masks (unit level, no compilation)."""
import pytest

from alloy.frontend.launch_metadata import OutputStore
from alloy.runtime.outputs import InferenceError, infer_output_shape


def Rec(off, mask=None, param="out"):  # noqa: N802 - reads as the record it builds
    return OutputStore(param, off, mask)


def _blk(axis, b):
    return ("add", ("mul", ("pid", axis), ("const", b)), ("arange", 0, b))


def _ptr(*terms):
    s = ("const", 0)
    for t in terms:
        s = ("add", s, t)
    return s


def test_vector_add_is_flat_and_masked():
    offs = _blk(0, 128)
    rec = Rec(_ptr(offs), ("lt", offs, ("arg", 3)))
    assert infer_output_shape("out", [rec], (8, 1, 1), [0, 0, 0, 1000]) == (1000,)


def test_unmasked_block_index_is_flat():
    rec = Rec(_ptr(_blk(0, 128)))
    assert infer_output_shape("out", [rec], (8, 1, 1), []) == (1024,)


def test_matmul_is_two_dimensional():
    rm, rn = _blk(0, 64), _blk(1, 64)
    off = _ptr(("mul", rm, ("arg", 1)), rn)
    mask = ("and", ("lt", rm, ("arg", 0)), ("lt", rn, ("arg", 1)))
    assert infer_output_shape("out", [Rec(off, mask)], (4, 3, 1), [200, 130]) == (200, 130)


def test_per_pixel_grid_is_two_dimensional():
    off = _ptr(("mul", ("pid", 1), ("const", 1920)), ("pid", 0))
    assert infer_output_shape("out", [Rec(off)], (1920, 1080, 1), []) == (1080, 1920)


def test_several_stores_take_the_largest_extent():
    i = _blk(0, 64)
    recs = [Rec(_ptr(("mul", i, ("const", 3)), ("const", k)), ("lt", i, ("arg", 0))) for k in range(3)]
    assert infer_output_shape("out", recs, (2, 1, 1), [100]) == (300,)


def test_data_dependent_offset_fails_clearly():
    with pytest.raises(InferenceError, match="run time"):
        infer_output_shape("out", [Rec(_ptr(None))], (1, 1, 1), [])


def test_negative_offsets_rejected():
    rec = Rec(_ptr(("sub", ("pid", 0), ("const", 5))))
    with pytest.raises(InferenceError, match="before the start"):
        infer_output_shape("out", [rec], (3, 1, 1), [])


def test_never_stored():
    with pytest.raises(InferenceError, match="never stores"):
        infer_output_shape("other", [Rec(_ptr(("pid", 0)))], (3, 1, 1), [])
