"""alloy._runtime: grid launch over the thread pool, dlopen/dlsym, errors."""

import os
import subprocess
from array import array
import threading
import time

import numpy as np
import pytest

from alloy import config
from alloy.runtime import native

KERNELS = r"""
#include <stdint.h>
#include <time.h>

/* args: [out*, chunks*, addend, grid*]. Adds lin + addend to out[lin] (so a
   second visit shows), logs each [begin, end) call, records the grid. */
void mark(const int64_t *args, int64_t b, int64_t e, int64_t g0, int64_t g1, int64_t g2) {
  int64_t *out = (int64_t *)args[0], *chunks = (int64_t *)args[1], *grid = (int64_t *)args[3];
  for (int64_t i = b; i < e; ++i) out[i] += i + args[2];
  int64_t slot = __atomic_fetch_add(&chunks[0], 1, __ATOMIC_RELAXED);
  chunks[1 + 2 * slot] = b;
  chunks[2 + 2 * slot] = e;
  grid[0] = g0; grid[1] = g1; grid[2] = g2;
}

void empty(const int64_t *args, int64_t b, int64_t e, int64_t g0, int64_t g1, int64_t g2) {}

/* args: [flag*, seen*]. Waits (at most 20 s) for another thread to set *flag. */
void wait_flag(const int64_t *args, int64_t b, int64_t e, int64_t g0, int64_t g1, int64_t g2) {
  volatile int64_t *flag = (volatile int64_t *)args[0];
  time_t start = time(0);
  while (!*flag && time(0) - start < 20) {}
  *(int64_t *)args[1] = *flag;
}
"""


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernels")
    (d / "k.c").write_text(KERNELS)
    so = d / "k.so"
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", str(d / "k.c"), "-o", str(so)], check=True)
    handle = native.dlopen(str(so))
    syms = {name: native.dlsym(handle, name) for name in ("mark", "empty", "wait_flag")}
    return {**syms, "handle": handle}


def run_mark(lib, grid, num_threads=0, addend=1):
    total = int(np.prod(grid))
    out = np.zeros(max(total, 1), np.int64)
    chunks = np.zeros(1 + 2 * max(total, 1), np.int64)
    seen_grid = np.full(3, -1, np.int64)
    args = np.array([out.ctypes.data, chunks.ctypes.data, addend, seen_grid.ctypes.data], np.int64)
    native.launch(lib["mark"], args, *grid, num_threads=num_threads)
    n = int(chunks[0])
    spans = sorted(zip(chunks[1:1 + 2 * n:2].tolist(), chunks[2:2 + 2 * n:2].tolist()))
    return out[:total], spans, seen_grid


@pytest.mark.parametrize("grid", [(1, 1, 1), (2, 1, 1), (7, 1, 1), (3, 5, 2), (1000, 3, 1), (1, 1, 4097), (64, 64, 4)])
@pytest.mark.parametrize("num_threads", [0, 1, 2, 3, 64])
def test_every_program_runs_once(lib, grid, num_threads):
    out, spans, seen_grid = run_mark(lib, grid, num_threads, addend=1)
    total = int(np.prod(grid))
    np.testing.assert_array_equal(out, np.arange(1, total + 1))
    assert seen_grid.tolist() == list(grid)
    # contiguous chunks that tile [0, total) without overlap
    assert spans[0][0] == 0 and spans[-1][1] == total
    assert all(a_end == b_begin for (_, a_end), (b_begin, _) in zip(spans, spans[1:]))
    if num_threads == 1 or total == 1:
        assert spans == [(0, total)]
    else:
        assert len(spans) <= 4 * native.get_num_threads()


@pytest.mark.parametrize("pack", [bytes, bytearray, memoryview, lambda a: array("q", a.tolist())])
def test_args_as_other_buffers_and_scalar_slots(lib, pack):
    out = np.zeros(10, np.int64)
    chunks = np.zeros(21, np.int64)
    grid = np.zeros(3, np.int64)
    args = np.array([out.ctypes.data, chunks.ctypes.data, -5, grid.ctypes.data], np.int64)
    native.launch(lib["mark"], pack(args), 10, 1, 1)
    np.testing.assert_array_equal(out, np.arange(10) - 5)


def test_back_to_back_and_after_idle(lib):
    # back to back: workers still spinning; after a pause: workers asleep
    for i in range(3000):
        out, _, _ = run_mark(lib, (8 + i % 5, 1, 1), addend=i)
        assert (out == np.arange(8 + i % 5) + i).all(), i
    for i in range(5):
        time.sleep(0.02)
        out, _, _ = run_mark(lib, (33, 2, 1))
        np.testing.assert_array_equal(out, np.arange(1, 67))


def test_empty_grid_calls_nothing(lib):
    for grid in [(0, 1, 1), (4, 0, 3), (1, 1, 0)]:
        out, spans, seen_grid = run_mark(lib, grid)
        assert spans == [] and seen_grid.tolist() == [-1, -1, -1]


def test_pool_resize_follows_config(lib):
    before = config.get().num_threads
    try:
        config.set(num_threads=3)
        assert native.get_num_threads() == 3
        out, spans, _ = run_mark(lib, (100, 1, 1))
        np.testing.assert_array_equal(out, np.arange(1, 101))
        assert len(spans) <= 12
        config.set(num_threads=1)
        assert run_mark(lib, (100, 1, 1))[1] == [(0, 100)]
    finally:
        config.set(num_threads=before)
    assert native.get_num_threads() == before


def test_launch_releases_the_gil(lib):
    flag = np.zeros(1, np.int64)
    seen = np.zeros(1, np.int64)
    args = np.array([flag.ctypes.data, seen.ctypes.data], np.int64)
    t = threading.Thread(target=native.launch, args=(lib["wait_flag"], args, 1, 1, 1))
    t.start()
    flag[0] = 7  # runs only if the launching thread let go of the GIL
    t.join()
    assert seen[0] == 7


def test_concurrent_launches_from_python_threads(lib):
    results = {}

    def work(i):
        results[i] = [run_mark(lib, (50 + i, 3, 1), addend=i)[0] for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, outs in results.items():
        for out in outs:
            np.testing.assert_array_equal(out, np.arange((50 + i) * 3) + i)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_launch_in_forked_child(lib):
    run_mark(lib, (64, 1, 1))  # the parent's pool exists before the fork
    pid = os.fork()
    if pid == 0:
        out, _, _ = run_mark(lib, (64, 1, 1), num_threads=2)
        os._exit(0 if (out == np.arange(1, 65)).all() else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("launch hung in a forked child")


def test_bad_launch_arguments(lib):
    ok = np.zeros(4, np.int64)
    with pytest.raises(ValueError, match="fn_addr is 0"):
        native.launch(0, ok, 1, 1, 1)
    with pytest.raises(ValueError, match="grid sizes must be >= 0"):
        native.launch(lib["empty"], ok, 2, -1, 1)
    with pytest.raises(OverflowError, match="overflows"):
        native.launch(lib["empty"], ok, 2**40, 2**40, 1)
    with pytest.raises(ValueError, match="num_threads"):
        native.launch(lib["empty"], ok, 1, 1, 1, num_threads=-1)
    with pytest.raises(ValueError, match="itemsize 4"):
        native.launch(lib["empty"], np.zeros(4, np.float32), 1, 1, 1)
    with pytest.raises(ValueError, match="12 bytes"):
        native.launch(lib["empty"], b"x" * 12, 1, 1, 1)
    with pytest.raises(TypeError, match="C-contiguous buffer"):
        native.launch(lib["empty"], np.zeros(8, np.int64)[::2], 1, 1, 1)
    with pytest.raises(TypeError, match="got list"):
        native.launch(lib["empty"], [1, 2], 1, 1, 1)
    native.launch(lib["empty"], None, 3, 1, 1)  # a kernel without arguments


def test_dlopen_dlsym_errors(lib, tmp_path):
    with pytest.raises(OSError, match="dlopen.*missing.so.*No such file"):
        native.dlopen(str(tmp_path / "missing.so"))
    bad = tmp_path / "bad.so"
    bad.write_bytes(b"not an ELF file")
    with pytest.raises(OSError, match="bad.so"):
        native.dlopen(str(bad))
    with pytest.raises(OSError, match="dlsym\\(no_such_kernel\\).*undefined symbol"):
        native.dlsym(lib["handle"], "no_such_kernel")
    with pytest.raises(ValueError, match="handle is 0"):
        native.dlsym(0, "mark")
    with pytest.raises(ValueError, match=">= 1"):
        native.set_num_threads(0)
