"""The spec's matmul and the flash-attention example, lowered for Metal (8x8 simdgroup-matrix
tile_dot), executed by a CPU emulation of the MSL they produce and checked against numpy.

No Metal is involved: the MSL is compiled as C++20 against test/metal/emu/metal_stdlib, which
implements the few Metal functions these kernels use (threads as std::threads, one threadgroup at
a time, simdgroup matrices computed whole by every lane; see that header). What this checks is the
SIMT lowering's arithmetic for Metal (which 8x8 fragment each SIMD-group owns, staging offsets and
padding, transposed operands, the loop-carried accumulators, leaving the fragments for the store,
the barriers' placement for this schedule), under the specification's simdgroup semantics as the
translator reads them; not Apple's compiler or hardware.
"""
import importlib.util
import pathlib
import re
import shutil
import subprocess

import numpy as np
import pytest

HERE = pathlib.Path(__file__).parent
CXX = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
PARAM = re.compile(r"^\s*(?:(?P<const>const )?device (?P<pt>\w+)\* (?P<pn>arg\d+)|constant (?P<st>\w+)& (?P<sn>arg\d+)"
                   r"|(?:uint3|uint|ushort) \w+) \[\[(?P<attr>[\w()]+)\]\][,)]")


def _harness(msl: str, entry: str, args: list, grid: tuple, nt: int, workdir: pathlib.Path) -> str:
    """C++ main that runs `entry` over `grid` threadgroups of `nt` threads on buffers read from workdir."""
    body = re.sub(r"^(\s*)threadgroup (\w+) (\w+)\[(\d+)\];", r"\1alignas(16) static \2 \3[\4];", msl, flags=re.M)
    sig = msl[msl.index(f"kernel void {entry}("):msl.index(") {", msl.index(f"kernel void {entry}(")) + 2]
    call, setup, back = [], [], []
    for line in sig.splitlines()[1:]:
        m = PARAM.match(line)
        assert m, f"unexpected kernel parameter line: {line!r}"
        if m["pn"]:
            i = int(m["pn"][3:])
            setup.append(f'  std::vector<char> b{i} = read_file("{workdir}/buf{i}.bin");')
            call.append(f"({m['pt']}*)b{i}.data()")
            if not m["const"]:
                back.append(f'  write_file("{workdir}/buf{i}.bin", b{i});')
        elif m["sn"]:
            i = int(m["sn"][3:])
            call.append(f"({m['st']})({args[i]})")
        else:
            builtin = {"threadgroup_position_in_grid": "uint3{gx, gy, 0}",
                       "thread_position_in_threadgroup": "uint3{t, 0, 0}"}.get(m["attr"])
            assert builtin, f"the emulation harness does not provide [[{m['attr']}]]"
            call.append(builtin)
    return f"""{body}
#undef kernel
#undef device
#undef threadgroup
#undef thread
#undef constant
static std::vector<char> read_file(const char *p) {{
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {{}});
}}
static void write_file(const char *p, const std::vector<char> &b) {{
  std::ofstream(p, std::ios::binary).write(b.data(), b.size());
}}
int main() {{
{chr(10).join(setup)}
  for (uint gy = 0; gy < {grid[1]}; ++gy)
    for (uint gx = 0; gx < {grid[0]}; ++gx) {{
      std::barrier<> bar({nt});
      std::deque<std::barrier<>> simd;
      for (uint s = 0; s < {nt // 32}; ++s) simd.emplace_back(32);
      std::vector<std::thread> threads;
      for (uint t = 0; t < {nt}; ++t)
        threads.emplace_back([&, t] {{
          metal::emu_barrier = &bar;
          metal::emu_simd_barrier = &simd[t / 32];
          metal::emu_lane = t % 32;
          metal::emu_simd = t / 32;
          {entry}({", ".join(call)});
        }});
      for (auto &th : threads) th.join();
    }}
{chr(10).join(back)}
  return 0;
}}
"""


def emulate(msl: str, entry: str, args: list, grid: tuple, nt: int, tmp_path: pathlib.Path) -> list:
    """Run the MSL kernel on the CPU emulation; args: arrays (buffers, written back) and scalars."""
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray):
            (tmp_path / f"buf{i}.bin").write_bytes(np.ascontiguousarray(a).tobytes())
    src = tmp_path / "kernel.cpp"
    src.write_text(_harness(msl, entry, args, grid, nt, tmp_path))
    exe = tmp_path / "kernel"
    proc = subprocess.run([CXX, "-std=c++20", "-O1", "-pthread", "-fno-strict-aliasing", "-w", "-I", str(HERE / "emu"),
                           str(src), "-o", str(exe)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    subprocess.run([str(exe)], check=True, timeout=300)
    return [np.frombuffer((tmp_path / f"buf{i}.bin").read_bytes(), a.dtype).reshape(a.shape)
            if isinstance(a, np.ndarray) else a for i, a in enumerate(args)]


def _example(name: str):
    path = HERE.parents[1] / "examples" / "kernel" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"alloy_metal_emulated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _metal(kernel, args, kwargs=None):
    """The MetalKernel of `kernel` specialized for `args` (as al.inspect(..., level="msl") builds it)."""
    from alloy.compiler import tile_ir
    from alloy.targets.metal import compile_tile_module

    spec, _ = kernel.specialize(kernel.bind(list(args), dict(kwargs or {})))
    ctx, module, _ = tile_ir(kernel.source, spec)
    with ctx:
        return compile_tile_module(module)


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler for the MSL emulation")
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["f32", "f16"])
def test_matmul_msl_emulated(dtype, tmp_path):
    """Ragged sizes (not multiples of the 64/64/16 blocks): masks, 4x3 threadgroups, 6 K steps."""
    import alloy as al

    M, K, N = 200, 96, 130
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(dtype)
    b_t = rng.standard_normal((N, K)).astype(dtype)
    art = _metal(_example("matmul"), [a, b_t])
    assert "simdgroup_multiply_accumulate(" in art.msl
    c = np.zeros((M, N), np.float32)
    grid = (al.cdiv(M, 64), al.cdiv(N, 64))
    out = emulate(art.msl, "matmul", [a, M, K, b_t, N, K, c], grid, art.num_threads, tmp_path)[6]
    ref = a.astype(np.float64) @ b_t.astype(np.float64).T
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler for the MSL emulation")
def test_flash_attention_msl_emulated(tmp_path):
    """Both dots on simdgroup matrices; `acc * alpha + tile_dot(p, v)` takes the accumulator out of
    the fragments through threadgroup memory and back each step (Metal has no element-wise
    fragment ops), row max/sum are SIMD shuffles. L = 200: a partial last block of keys."""
    import math

    import alloy as al

    L, D = 200, 64
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((L, D)).astype(np.float32) for _ in range(3))
    scale = 1.0 / math.sqrt(D)
    art = _metal(_example("flash_attention"), [q, k, v, L, scale], {"D": D})
    assert art.msl.count("simdgroup_multiply_accumulate(") > 0 and "simd_shuffle_xor(" in art.msl
    o = np.zeros((L, D), np.float32)
    args = [q, L, D, k, L, D, v, L, D, o, L, scale]
    out = emulate(art.msl, "flash_attention", args, (al.cdiv(L, 32), 1), art.num_threads, tmp_path)[9]
    s = (q.astype(np.float64) @ k.T) * scale
    p = np.exp(s - s.max(1, keepdims=True))
    np.testing.assert_allclose(out, (p / p.sum(1, keepdims=True)) @ v, rtol=1e-4, atol=1e-4)
