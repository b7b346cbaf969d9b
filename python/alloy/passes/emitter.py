"""`TextEmitter`: the MLIR-text emission both lowerings share (fresh SSA names, indented lines, op results).

The CPU (passes/vector/lowering.py) and GPU (passes/simt/lowering.py) lowerings
rebuild a kernel function as MLIR text and parse it back; they subclass this.
"""
from __future__ import annotations


class TextEmitter:
    """Lines of MLIR text under construction, with a counter for SSA names."""

    def __init__(self, depth: int) -> None:
        self.lines: list[str] = []
        self.depth = depth  # indentation, in two-space steps
        self.n = 0

    def new(self, prefix: str = "v") -> str:
        """A fresh SSA name."""
        self.n += 1
        return f"%{prefix}{self.n}"

    def emit(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def op(self, text: str, prefix: str = "v") -> str:
        """Emit `%name = text` and return the name."""
        r = self.new(prefix)
        self.emit(f"{r} = {text}")
        return r

    def results(self, n: int) -> tuple[str, list[str]]:
        """(definition prefix, names) for an op with n results."""
        if n == 0:
            return "", []
        r = self.new("r")
        if n == 1:
            return f"{r} = ", [r]
        return f"{r}:{n} = ", [f"{r}#{i}" for i in range(n)]

    def cmpxchg(self, addr: str, ptr_type: str, expected: str, desired: str, elem: str, bits: str) -> str:
        """llvm.cmpxchg of `elem` values at `addr` on their integer bits (`bits`, e.g. i32 for f32); the old value."""
        if bits != elem:
            expected = self.op(f"arith.bitcast {expected} : {elem} to {bits}")
            desired = self.op(f"arith.bitcast {desired} : {elem} to {bits}")
        pair = self.op(f"llvm.cmpxchg {addr}, {expected}, {desired} acq_rel monotonic : {ptr_type}, {bits}")
        old = self.op(f"llvm.extractvalue {pair}[0] : !llvm.struct<({bits}, i1)>")
        return self.op(f"arith.bitcast {old} : {bits} to {elem}") if bits != elem else old
