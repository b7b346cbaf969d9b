"""The kernels Alloy ships, with the specializations their programs really launch.

`specializations(path, monkeypatch)` runs one example program (examples/kernel/*.py) on the CPU
target while recording every kernel specialization it compiles: [(source, spec)].
"""
import importlib.util
import pathlib

import alloy.runtime.specializations as lookup

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples" / "kernel").glob("*.py"))


def specializations(path, monkeypatch):
    """(source, spec) of every kernel specialization the example launches."""
    real = lookup.compile_spec
    seen = {}

    def record(source, source_hash, spec, target="cpu"):
        seen.setdefault((source_hash, spec.key()), (source, spec))
        return real(source, source_hash, spec, target)

    monkeypatch.setattr(lookup, "compile_spec", record)
    spec = importlib.util.spec_from_file_location(f"alloy_shipped_example_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main() == 0
    return list(seen.values())
