"""The thread-level (SIMT) language on the CPU target, where a threadgroup's threads run as loops split
at barriers: every primitive against numpy (test/simt_kernels.py), the threads= launch keyword, and the
compile errors a SIMT kernel can earn (each naming its line)."""
import importlib.util
import inspect
import pathlib
import sys

import numpy as np
import pytest

import alloy as al

_path = pathlib.Path(__file__).resolve().parents[1] / "simt_kernels.py"
_spec = importlib.util.spec_from_file_location("alloy_simt_kernels", _path)
simt = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = simt
_spec.loader.exec_module(simt)


@pytest.mark.parametrize("name", list(simt.CASES))
def test_simt_case_matches_numpy(name):
    case = simt.CASES[name](np.random.default_rng(7))
    case.check(simt.run(case), 1.0)


def test_threads_is_part_of_the_specialisation():
    x = np.arange(256, dtype=np.float32)
    a = np.asarray(simt.reverse_block[2](x, 256, threads=128))
    b = np.asarray(simt.reverse_block[1](x, 256, threads=256))
    np.testing.assert_array_equal(a, np.concatenate([x[:128][::-1], x[128:][::-1]]))
    np.testing.assert_array_equal(b, x[::-1])
    keys = {k[0] for k in simt.reverse_block._compiled}
    assert len(keys) == 2


def test_thread_loops_in_the_cpu_pipeline():
    x = np.zeros(64, np.float32)
    ir = al.inspect(simt.reverse_block, x, 64, threads=64, level="tile-opt", print_ir=False)
    assert ir.count("tile.thread_loop") == 2
    assert "tile.barrier" not in ir and "tile.thread_id" not in ir


@pytest.mark.parametrize("threads", [0, 100, 2048, 32.0])
def test_bad_threads_value(threads):
    with pytest.raises(ValueError, match="threads must be a multiple of 32 from 32 to 1024"):
        simt.reverse_block[1](np.zeros(32, np.float32), 32, threads=threads)


# ------------------------------------------------------------------ errors
def _line_of(fn, needle):
    lines, first = inspect.getsourcelines(fn.fn)
    return first + next(i for i, text in enumerate(lines) if needle in text)


def _expect(kernel, needle, message, *args, **kw):
    with pytest.raises(al.CompilationError) as e:
        al.inspect(kernel, *args, level="tile-opt", print_ir=False, **kw)
    text = str(e.value)
    assert f"in kernel '{kernel.__name__}'" in text
    assert f":{_line_of(kernel, needle)}:" in text, text
    assert message in text, text


@al.kernel
def divergent_barrier(x):
    t = al.thread_id()
    if t < 16:
        al.barrier()
    al.store(x + t, 1.0)


@al.kernel
def divergent_loop_shuffle(x):
    t = al.thread_id()
    v = 0.0
    for i in range(t):
        v = al.simd_shuffle_xor(v + 1.0, 1)
    al.store(x + t, v)


@al.kernel
def too_much_shared(x):
    a = al.shared(4096)
    b = al.shared(4097)
    b[0] = a[0]


@al.kernel
def tiles_in_simt(x):
    t = al.thread_id()
    offs = al.arange(0, 32)
    al.store(x + offs, al.load(x + offs) + 1.0)


@al.kernel
def matrix_in_arithmetic(x):
    m = al.simd_matrix()
    m = m * 2.0


@al.kernel
def index_an_array_with_a_float(x):
    buf = al.shared(32)
    buf[al.thread_id()] = 1.0
    al.store(x, buf[1.5])


X = np.zeros(64, np.float32)


def test_barrier_under_divergent_if():
    _expect(divergent_barrier, "al.barrier()", "al.barrier under control flow that depends on the thread", X)


def test_shuffle_under_divergent_loop():
    _expect(divergent_loop_shuffle, "simd_shuffle_xor", "a SIMD shuffle under control flow that depends on the thread",
            X)


def test_shared_memory_over_its_limit():
    _expect(too_much_shared, "b = al.shared(4097)", "32772 bytes, over the 32768-byte threadgroup-memory limit", X)


def test_tiles_are_not_mixed_into_simt_kernels():
    _expect(tiles_in_simt, "offs = al.arange", "tiles (al.arange", X)


def test_matrix_is_not_an_arithmetic_value():
    _expect(matrix_in_arithmetic, "m = m * 2.0", "is not a value in arithmetic", X)


def test_array_index_must_be_an_integer():
    _expect(index_an_array_with_a_float, "buf[1.5]", "must be a scalar integer", X)
