"""Every example in examples/kernel runs on the CPU target and checks itself against numpy."""
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).parents[2] / "examples" / "kernel").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example(path):
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


def test_all_examples_present():
    names = {p.stem for p in EXAMPLES}
    assert {"vector_add", "elementwise", "softmax", "blur", "matmul", "histogram", "nbody", "mandelbrot",
            "flash_attention", "block_reduce", "simdgroup_matmul"} <= names
