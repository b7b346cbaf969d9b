"""lit configuration for the pass tests: `alloy-opt` and `FileCheck` run through this Python."""
import os
import sys
import tempfile

import lit.formats

config.name = "alloy-passes"  # noqa: F821 - `config` is provided by lit
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(os.path.abspath(__file__))
config.test_exec_root = os.path.join(tempfile.gettempdir(), "alloy-lit-passes")  # keep Output/ out of the tree
_root = os.path.dirname(os.path.dirname(config.test_source_root))
_python = sys.executable
config.substitutions.append(("alloy-opt", f'"{_python}" -m alloy.tools.alloy_opt'))
config.substitutions.append(("FileCheck", f'"{_python}" -m filecheck'))
config.substitutions.append(("not ", f'"{_python}" -c "import subprocess,sys; sys.exit(subprocess.run(sys.argv[1:]).returncode == 0)" '))
config.environment["PYTHONPATH"] = os.pathsep.join(
    p for p in (os.path.join(_root, "python"), os.environ.get("PYTHONPATH", "")) if p)
