"""The CPU target description: what the vector lowering needs to know of the CPU it compiles for.

Built by the CPU pipeline (alloy.targets.cpu.machine) from the `cpu_target`
setting and handed to the passes; passes never ask which CPU by name.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VectorTarget:
    """SIMD register file of a CPU, for chunk widths and register blocking."""

    name: str  # the cpu_target it was built for, for messages
    vector_bytes: int  # bytes of one SIMD register (16 NEON/SSE, 32 AVX2, 64 AVX-512)
    vector_registers: int  # architectural SIMD registers (16 AVX2, 32 AVX-512 and NEON)
    masked_bytes: tuple[int, ...]  # element sizes of native masked loads/stores (AVX-512BW all, AVX2 4/8, NEON none)

    def lanes(self, elem_bytes: int = 4) -> int:
        """Elements of `elem_bytes` bytes in one register."""
        return max(1, self.vector_bytes // elem_bytes)


# f16/bf16 tiles compute in f32 on every CPU (rounded back after each op, as the narrow type would);
# the lowering widens them, so that no CPU's code generator meets a vector it would scalarise
WIDENED_FLOATS = ("f16", "bf16")

AVX512 = VectorTarget("x86-64-v4", 64, 32, (1, 2, 4, 8))
AVX2 = VectorTarget("x86-64-v3", 32, 16, (4, 8))
NEON = VectorTarget("aarch64", 16, 32, ())
