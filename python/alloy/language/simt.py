"""The thread-level (SIMT) kernel language: threads, threadgroup memory, SIMD groups.

A kernel that calls any of these is a SIMT kernel: one program is one
threadgroup of `threads` threads (a launch keyword, `kernel[grid](...,
threads=256)`, default 256), and every value is per thread. Tiles
(`al.arange`, `al.zeros`, ...) belong to tile kernels and are not mixed in.
SIMD groups have 32 lanes on every target (CUDA warps, Metal simdgroups, the
CPU simulation).
"""
from __future__ import annotations

from .core import builtin


@builtin
def thread_id():
    """This thread's position in its threadgroup, 0 .. threads-1 (int32)."""


@builtin
def num_threads():
    """The threadgroup size this kernel was compiled for (the launch's `threads=`), a compile-time int."""


@builtin
def simd_lane():
    """This thread's lane in its SIMD group, 0 .. 31 (int32)."""


@builtin
def simd_group():
    """This thread's SIMD group in its threadgroup, thread_id() // 32 (int32)."""


@builtin
def simd_size():
    """Lanes of a SIMD group: 32 on every target (a compile-time int)."""


@builtin
def shared(n, dtype=None):
    """A threadgroup array of `n` elements (compile-time), default float32: `buf[i]`, `buf[i] = v`.
    Its contents are undefined until written; all threads of the threadgroup see one array."""


@builtin
def local(n, dtype=None):
    """A per-thread array of `n` elements (compile-time), default float32: `loc[i]`, `loc[i] = v`."""


@builtin
def barrier():
    """Wait until every thread of the threadgroup reaches this point; threadgroup-memory writes before it
    are visible after it. Must not sit under control flow that depends on the thread."""


@builtin
def coop_load(buf, src, size):
    """Copy `size` elements from global pointer `src` into shared array `buf` with every thread of the
    threadgroup, then `al.barrier()`."""


@builtin
def copy4(dst, offset, src):
    """dst[offset + j] = src[j] for j in 0..3: a 4-element load from global pointer `src` into local or
    shared array `dst`."""


@builtin
def simd_shuffle(value, lane):
    """`value` as held by lane `lane` of this SIMD group (lane taken modulo 32)."""


@builtin
def simd_shuffle_xor(value, mask):
    """`value` as held by lane simd_lane() ^ mask of this SIMD group (a butterfly step; mask < 32)."""


@builtin
def simd_reduce(value, op="sum"):
    """The sum (op="sum"), maximum ("max") or minimum ("min") of `value` over this SIMD group's 32 lanes,
    returned to every lane."""


@builtin
def simd_matrix(dtype=None, value=0):
    """An 8x8 SIMD-group matrix (default float32) filled with `value`, held jointly by the SIMD group's
    lanes: Metal's simdgroup_matrix, CUDA's MMA fragments, an exact emulation on the CPU."""


@builtin
def simd_load(src, offset, stride):
    """The 8x8 matrix whose element (r, c) is src[offset + r * stride + c] (src: a global pointer or a
    shared array; on Metal a shared array and a compile-time stride)."""


@builtin
def simd_mma(acc, a, b):
    """acc + a @ b of 8x8 SIMD-group matrices, as a new matrix (tensor cores on CUDA for float16 and
    bfloat16 a and b; simdgroup_multiply_accumulate on Metal)."""


@builtin
def simd_store(m, dst, offset, stride):
    """dst[offset + r * stride + c] = m[r, c] for the 8x8 matrix m (dst: a global pointer or a shared
    array; on Metal a shared array and a compile-time stride)."""


SIMT_NAMES = ("thread_id", "num_threads", "simd_lane", "simd_group", "simd_size", "shared", "local", "barrier",
              "coop_load", "copy4", "simd_shuffle", "simd_shuffle_xor", "simd_reduce", "simd_matrix", "simd_load",
              "simd_mma", "simd_store")

__all__ = list(SIMT_NAMES)
