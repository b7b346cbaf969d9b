"""Metal target tests: skip what needs the C++ translator extension or a host C++ compiler when missing."""
import shutil

import pytest


def _has_translator() -> bool:
    try:
        import mlir.ir  # noqa: F401 - loads libMLIRPythonCAPI.so first
        from alloy import _compiler  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    here = [i for i in items if "test/metal/" in str(i.fspath).replace("\\", "/")]
    if not here:
        return
    no_translator = not _has_translator()
    no_cxx = not any(shutil.which(c) for c in ("c++", "g++", "clang++"))
    for item in here:
        uses_shim = item.fspath.basename == "test_shim.py" or "shim" in item.name
        if no_translator and item.fspath.basename != "test_shim.py":
            item.add_marker(pytest.mark.skip(reason="alloy._compiler (lib/, the MSL translator) is not built"))
        elif no_cxx and uses_shim:
            item.add_marker(pytest.mark.skip(reason="no host C++ compiler for the Metal-stdlib shim check"))
