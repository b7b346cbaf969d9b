"""KernelCache (memory + disk), cache_key, and alloy.config's cache settings."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import alloy.version
from alloy import config
from alloy.runtime import native
from alloy.runtime.cache import KernelCache, cache_key

SOURCE = r"""
#include <stdint.h>
/* args: [out*, value]: out[lin] = value * (lin + 1). */
void fill(const int64_t *args, int64_t b, int64_t e, int64_t g0, int64_t g1, int64_t g2) {
  int64_t *out = (int64_t *)args[0];
  for (int64_t i = b; i < e; ++i) out[i] = args[1] * (i + 1);
}
"""
PYTHON_PATH = os.pathsep.join(p for p in sys.path if p)


@pytest.fixture(scope="module")
def so_bytes(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("so")
    (d / "k.c").write_text(SOURCE)
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", str(d / "k.c"), "-o", str(d / "k.so")], check=True)
    return (d / "k.so").read_bytes()


def run_fill(kernel, n=10, value=3):
    out = np.zeros(n, np.int64)
    native.launch(kernel.fn_addr, np.array([out.ctypes.data, value], np.int64), n, 1, 1)
    return out


def test_cache_key_is_canonical():
    assert cache_key("k", 1, {"a": 1, "b": (2.0, None)}) == cache_key("k", 1, {"b": (2.0, None), "a": 1})
    values = (1, "1", 1.0, True, b"1", (1,), [1], np.dtype("int64"), np.dtype("int32"), np.int32(1), np.int64(1))
    assert len({cache_key(x) for x in values}) == len(values)
    assert len(cache_key("x")) == 64 and int(cache_key("x"), 16) >= 0
    with pytest.raises(TypeError, match="cannot key a value of type object"):
        cache_key(object())


def test_cache_key_carries_the_compiler_version(monkeypatch):
    before = cache_key("k")
    monkeypatch.setattr(alloy.version, "__version__", "99.0")
    assert cache_key("k") != before


def test_put_get_and_disk_round_trip(tmp_path, so_bytes):
    key = cache_key("fill", "test")
    cache = KernelCache(tmp_path)
    assert cache.get(key) is None
    meta = {"entry": "fill", "args": ["ptr<i64>", "i64"]}
    k = cache.put(key, so_bytes, {"entry": "fill", "args": ("ptr<i64>", "i64")})
    assert k.metadata == meta  # as get() reads it back from JSON
    np.testing.assert_array_equal(run_fill(k), 3 * np.arange(1, 11))
    assert cache.get(key) is k
    assert k.path == tmp_path / "kernels" / key[:2] / f"{key}.so"
    assert json.loads(k.path.with_suffix(".json").read_text()) == meta
    assert k.path.read_bytes() == so_bytes
    assert not [p for p in k.path.parent.iterdir() if p.name.endswith(".tmp")]
    again = KernelCache(tmp_path).get(key)  # from disk; the .so is not reopened
    assert again.fn_addr == k.fn_addr and again.metadata == meta
    np.testing.assert_array_equal(run_fill(again, value=-2), -2 * np.arange(1, 11))


def test_fresh_process_loads_without_mlir(tmp_path, so_bytes):
    key = cache_key("fill", "subprocess")
    KernelCache(tmp_path).put(key, so_bytes, {"entry": "fill"})
    code = f"""
import sys, time
import numpy as np
from alloy.runtime.cache import KernelCache
from alloy.runtime import native
t0 = time.perf_counter()
k = KernelCache({str(tmp_path)!r}).get({key!r})
ms = (time.perf_counter() - t0) * 1e3
out = np.zeros(5, np.int64)
native.launch(k.fn_addr, np.array([out.ctypes.data, 7], np.int64), 5, 1, 1)
assert out.tolist() == [7, 14, 21, 28, 35], out
assert not [m for m in sys.modules if m == "mlir" or m.startswith("mlir.")], "mlir was imported"
print(f"loaded in {{ms:.2f}} ms")
"""
    env = {**os.environ, "PYTHONPATH": PYTHON_PATH}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "loaded in" in r.stdout


@pytest.mark.parametrize("damage", ["garbage_so", "truncated_so", "missing_so", "bad_json", "no_entry", "wrong_entry", "missing_json"])
def test_damaged_entry_is_a_miss_then_repaired(tmp_path, so_bytes, damage):
    # Write the entry by hand: a path this process has dlopened stays loaded.
    key = cache_key("fill", damage)
    folder = tmp_path / "kernels" / key[:2]
    folder.mkdir(parents=True)
    so, meta = folder / f"{key}.so", folder / f"{key}.json"
    so.write_bytes({"garbage_so": b"\x7fELF garbage" * 10, "truncated_so": so_bytes[:200]}.get(damage, so_bytes))
    meta.write_text({"bad_json": "{not json", "no_entry": "{}", "wrong_entry": '{"entry": "nope"}'}.get(damage, '{"entry": "fill"}'))
    if damage == "missing_so":
        so.unlink()
    if damage == "missing_json":
        meta.unlink()
    cache = KernelCache(tmp_path)
    assert cache.get(key) is None
    repaired = cache.put(key, so_bytes, {"entry": "fill"})
    np.testing.assert_array_equal(run_fill(repaired), 3 * np.arange(1, 11))
    np.testing.assert_array_equal(run_fill(KernelCache(tmp_path).get(key), value=2), 2 * np.arange(1, 11))


def test_stale_library_without_the_entry_is_a_miss_then_repaired(tmp_path, so_bytes):
    key = cache_key("fill", "stale")
    folder = tmp_path / "kernels" / key[:2]
    folder.mkdir(parents=True)
    (folder / "old.c").write_text("void other(void) {}\n")
    subprocess.run(["cc", "-shared", "-fPIC", str(folder / "old.c"), "-o", str(folder / f"{key}.so")], check=True)
    (folder / f"{key}.json").write_text('{"entry": "fill"}')
    cache = KernelCache(tmp_path)
    assert cache.get(key) is None  # loads, but has no "fill"
    repaired = cache.put(key, so_bytes, {"entry": "fill"})
    np.testing.assert_array_equal(run_fill(repaired), 3 * np.arange(1, 11))
    assert (folder / f"{key}.so").read_bytes() == so_bytes


def test_intact_hand_written_entry_loads(tmp_path, so_bytes):
    key = cache_key("fill", "by hand")
    folder = tmp_path / "kernels" / key[:2]
    folder.mkdir(parents=True)
    (folder / f"{key}.so").write_bytes(so_bytes)
    (folder / f"{key}.json").write_text('{"entry": "fill"}')
    np.testing.assert_array_equal(run_fill(KernelCache(tmp_path).get(key)), 3 * np.arange(1, 11))


def test_unwritable_cache_dir_still_loads(tmp_path, so_bytes):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.warns(UserWarning, match="cannot write"):
        k = KernelCache(blocker / "cache").put(cache_key("fill", "nowrite"), so_bytes, {"entry": "fill"})
    np.testing.assert_array_equal(run_fill(k), 3 * np.arange(1, 11))


def test_bad_keys_and_metadata(tmp_path, so_bytes):
    cache = KernelCache(tmp_path)
    for key in ["", "../etc", "a/b", "x" * 200, 5]:
        with pytest.raises(ValueError, match="cache key"):
            cache.get(key)
    with pytest.raises(ValueError, match=r"metadata\['entry'\]"):
        cache.put("k1", so_bytes, {"name": "fill"})
    with pytest.raises(TypeError, match="JSON-serializable"):
        cache.put("k1", so_bytes, {"entry": "fill", "x": object()})
    with pytest.raises(TypeError, match="shared_object must be bytes"):
        cache.put("k1", "not bytes", {"entry": "fill"})


def test_default_directory_follows_config(tmp_path):
    before = config.get()
    try:
        config.set(cache_dir=tmp_path / "c")
        assert KernelCache().directory == tmp_path / "c" / "kernels"
    finally:
        config.set(cache_dir=before.cache_dir)
    with pytest.raises(TypeError, match="unknown field"):
        config.set(cache_dirr="x")
    with pytest.raises(ValueError, match="num_threads: must be >= 1"):
        config.set(num_threads=0)
    with pytest.raises(ValueError, match="Config.target"):
        config.set(target="tpu")
    assert config.get() == before


def config_in_subprocess(**env) -> str:
    code = "from alloy import config; c = config.get(); print(c.cache_dir, c.num_threads)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ALLOY_")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**clean, **env, "PYTHONPATH": PYTHON_PATH})
    return r.stdout + r.stderr


def test_env_overrides(tmp_path):
    assert config_in_subprocess(ALLOY_CACHE_DIR=str(tmp_path / "x"), ALLOY_NUM_THREADS="3") == f"{tmp_path / 'x'} 3\n"
    assert config_in_subprocess(HOME=str(tmp_path)).startswith(f"{tmp_path / '.cache' / 'alloy'} ")
    for bad in ("zero", "-2", "1.5"):
        out = config_in_subprocess(ALLOY_NUM_THREADS=bad)
        assert f"ValueError: ALLOY_NUM_THREADS: expected a positive integer, got '{bad}'" in out
