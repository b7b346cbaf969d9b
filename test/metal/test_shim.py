"""The Metal-stdlib shim is strict: calls the MSL specification's signatures reject fail the check."""
import pytest

PRELUDE = """#include <metal_stdlib>
using namespace metal;
kernel void k(device float* a [[buffer(0)]], device half* h [[buffer(1)]], uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 f; simdgroup_half8x8 g;
"""

ACCEPTED = {
    "mma": "simdgroup_load(f, a, ulong(8)); simdgroup_multiply_accumulate(f, f, f, f); simdgroup_store(f, a, ulong(8));",
    "mma half transpose": "simdgroup_load(g, h, ulong(8), ulong2(0, 0), true);",
    "atomics": "float o = atomic_fetch_add_explicit((device atomic_float*)a, 1.0f, memory_order_relaxed);",
    "simd": "float s = simd_shuffle_xor(simd_sum(a[lane]), ushort(1)); half m = simd_max(h[lane]);",
    "barrier": "threadgroup_barrier(mem_flags::mem_device | mem_flags::mem_threadgroup);",
    "vectors": "float4 v = float4(*(const device packed_float4*)a); int4 i = int4(v); bool4 b = v > float4(0.0f);",
    "math": "float e = precise::exp(a[0]) + fast::tanh(a[1]) + metal::floor(a[2]); half x = metal::exp(h[0]);",
}

REJECTED = {
    "mixed-precision mma": "simdgroup_multiply_accumulate(f, g, g, f);",
    "mma element mismatch": "simdgroup_load(f, h, ulong(8));",
    "float atomic max": "atomic_fetch_max_explicit((device atomic_float*)a, 1.0f, memory_order_relaxed);",
    "implicit vector conversion": "int4 i = int4(1); float4 v = i;",
    "as_type size mismatch": "uint u = as_type<uint>(h[0]);",
    "64-bit simd_sum": "long s = simd_sum(long(1));",
    "precise half": "half e = precise::exp(h[0]);",
    "unknown function": "float e = erf(a[0]);",
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_shim_accepts_spec_calls(case):
    from alloy.targets.metal import check_msl

    check_msl(PRELUDE + ACCEPTED[case] + "\n}\n")


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_shim_rejects_calls_outside_the_spec(case):
    from alloy.targets.metal import MSLCheckError, check_msl

    with pytest.raises(MSLCheckError, match=r"kernel\.metal:\d+:\d+: error"):
        check_msl(PRELUDE + REJECTED[case] + "\n}\n")
