"""Run the lit/FileCheck pass tests (test/passes/*.mlir) from pytest."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_lit_passes():
    proc = subprocess.run([sys.executable, "-c", "from lit.main import main; main()", "-q", "--no-progress-bar", os.path.join(HERE, "passes")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
