"""The thread-level (SIMT) language on the Metal pipeline: every case of test/simt_kernels.py lowered
to MSL and checked against the Metal-stdlib shim, then run by the CPU emulation of that MSL
(test/metal/emu: threads as std::threads) and compared with numpy. Nothing runs on Metal."""
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

import alloy as al
from alloy.compiler import tile_ir
from alloy.targets.metal import check_msl, compile_tile_module

from test_emulated import CXX, emulate

_path = pathlib.Path(__file__).resolve().parents[1] / "simt_kernels.py"
_spec = importlib.util.spec_from_file_location("alloy_simt_kernels_metal", _path)
simt = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = simt
_spec.loader.exec_module(simt)

# What Metal does not have: simdgroup matrices of mixed element types, or of bfloat16
NOT_ON_METAL = {"gemm_f16_f32acc": "acc, a and b must all be float32 or all float16",
                "gemm_bf16": "acc, a and b must all be float32 or all float16"}
METAL_CASES = [n for n in simt.CASES if n not in NOT_ON_METAL]


def _compiled(case):
    kernel = case.kernel
    spec, _ = kernel.specialize(kernel.bind(list(case.args), dict(case.kwargs)))
    ctx, module, _ = tile_ir(kernel.source, spec)
    with ctx:
        return compile_tile_module(module), spec


def _slot_args(case, spec):
    """The kernel's parameters in slot order: arrays (outputs allocated here) and scalars."""
    bound = case.kernel.bind(list(case.args), dict(case.kwargs))
    out, outputs = [], []
    for a in spec.args:
        v = bound[a.name]
        if a.kind == "output":
            v = np.zeros(case.kwargs[a.name].shape, case.kwargs[a.name].dtype) if a.name in case.kwargs else None
            outputs.append(len(out))
        if isinstance(v, np.ndarray):
            out.append(v)
            if a.kind == "array":
                out.extend(v.shape)
        else:
            out.append(v)
    return out, outputs


@pytest.mark.parametrize("name", METAL_CASES)
def test_simt_case_msl_passes_shim(name):
    art, _ = _compiled(simt.CASES[name](np.random.default_rng(7)))
    check_msl(art.msl, name=f"simt.{name}.metal")


@pytest.mark.parametrize("name", sorted(NOT_ON_METAL))
def test_simt_case_metal_says_why_not(name):
    case = simt.CASES[name](np.random.default_rng(7))
    with pytest.raises(al.CompilationError, match=NOT_ON_METAL[name]):
        al.inspect(case.kernel, *case.args, level="msl", print_ir=False, **case.kwargs)


EMULATED = ["reverse", "rotate", "local", "shuffles", "reductions_f32", "reductions_i32", "block_sum", "gemm_f32",
            "gemm_f16_f16acc"]


@pytest.mark.skipif(CXX is None, reason="no host C++ compiler for the MSL emulation")
@pytest.mark.parametrize("name", EMULATED)
def test_simt_case_msl_emulated(name, tmp_path):
    case = simt.CASES[name](np.random.default_rng(7))
    art, spec = _compiled(case)
    case.kwargs.update(_outputs_like_cpu(case))
    args, out_slots = _slot_args(case, spec)
    grid = tuple(case.grid) + (1,) * (2 - len(case.grid))
    result = emulate(art.msl, art.entry, args, grid, art.num_threads, tmp_path)
    case.check(tuple(result[i] for i in out_slots), 1.0)


def _outputs_like_cpu(case) -> dict:
    """Zeroed outputs of the shapes and dtypes a run of the case on the CPU target gives them."""
    ran = simt.run(case)
    outputs = [p.name for p in case.kernel.params if p.kind == "output"]
    return {n: np.zeros(np.asarray(r).shape, np.asarray(r).dtype) for n, r in zip(outputs, ran)}
