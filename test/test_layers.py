"""The layer rules of python/alloy (pyproject.toml [tool.importlinter]), checked with import-linter:
the compiler's layers, no import cycles, and alloy.serve / alloy.cli / alloy_torch on the public API only."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_import_linter_contracts_are_kept():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")]))
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in proc.stdout, proc.stdout[-2000:]


def test_no_class_names_of_one_or_two_letters():
    """Value types are named for what they hold (no `U`, `D`, `TV`)."""
    import ast

    short = []
    for path in (ROOT / "python" / "alloy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and len(node.name.strip("_")) <= 2:
                short.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not short, short
