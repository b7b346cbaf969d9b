"""What a kernel's cache key covers: every change of meaning recompiles (source edits of the kernel
and its @al.func helpers, constexpr values, global and closure values the source names, the
compiler's sources, the host CPU), and a cache hit neither parses the kernel nor imports MLIR."""
import importlib.util
import inspect
import linecache
import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

import alloy as al
import alloy.compiler as compiler
import alloy.runtime.specializations as specializations
import alloy.runtime.cache as cache
from alloy.runtime.helpers import _source_text, kernel_digest

FACTOR = 2.0
CFG = types.SimpleNamespace(SHIFT=1.0)


@al.kernel
def by_global(x, out: al.output, N, BLOCK: al.constexpr = 64):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, al.load(x + offs, mask=m) * FACTOR + CFG.SHIFT, mask=m)


def by_closure(scale):
    @al.kernel
    def scaled(x, out: al.output, N, BLOCK: al.constexpr = 64):
        offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
        m = offs < N
        al.store(out + offs, al.load(x + offs, mask=m) * scale, mask=m)

    return scaled


MODULE = '''
import alloy as al


@al.func
def inner(v):
    return v {inner}


@al.func
def outer(v):
    return inner(v) * 1.0


@al.kernel
def apply(x, out: al.output, N, BLOCK: al.constexpr = 64):
    offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
    m = offs < N
    al.store(out + offs, outer(al.load(x + offs, mask=m)) {kernel}, mask=m)
{tail}
'''


@pytest.fixture
def compiles(cpu_compiles):
    """The CPU compilations made (conftest.cpu_compiles), with by_global's in-memory code cleared."""
    by_global._compiled.clear()
    yield cpu_compiles
    by_global._compiled.clear()


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_version(path, n, inner="* 2.0", kernel="+ 0.0", tail=""):
    """Writes (or rewrites, as an editor would) the kernel module; returns it imported afresh."""
    path.write_text(MODULE.format(inner=inner, kernel=kernel, tail=tail))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + n * 10**9))  # a later save
    return load_module(path, f"alloy_key_test_{path.stem}_{n}")


def run(kernel, n=100):
    x = np.arange(n, dtype=np.float32)
    return x, np.asarray(kernel[al.cdiv(n, 64)](x, n))


def test_kernel_and_helper_edits_recompile(tmp_path, compiles):
    path = tmp_path / "kmod.py"
    m1 = write_version(path, 1)
    x, y = run(m1.apply)
    np.testing.assert_array_equal(y, x * 2)
    m2 = write_version(path, 2, inner="* 3.0")  # a helper two calls deep; the kernel's text is unchanged
    x, y = run(m2.apply)
    np.testing.assert_array_equal(y, x * 3)
    m3 = write_version(path, 3, inner="* 3.0", kernel="+ 5.0")  # the kernel itself
    x, y = run(m3.apply)
    np.testing.assert_array_equal(y, x * 3 + 5)
    assert len(compiles) == 3
    m4 = write_version(path, 4, inner="* 3.0", kernel="+ 5.0")  # saved again, unchanged: a hit
    x, y = run(m4.apply)
    np.testing.assert_array_equal(y, x * 3 + 5)
    assert len(compiles) == 3


def test_digest_ignores_the_rest_of_the_file(tmp_path):
    path = tmp_path / "kmod2.py"
    base = kernel_digest(write_version(path, 1).apply.fn)
    assert kernel_digest(write_version(path, 2, tail="\n\ndef unrelated():\n    return 42\n").apply.fn) == base
    assert kernel_digest(write_version(path, 3, kernel="+ 0.5").apply.fn) != base


def test_global_values_recompile(monkeypatch, compiles):
    x, y = run(by_global)
    np.testing.assert_allclose(y, x * 2 + 1)
    monkeypatch.setattr(sys.modules[__name__], "FACTOR", 3.0)
    x, y = run(al.kernel(by_global.fn))  # a new kernel object: the same function, the global changed
    np.testing.assert_allclose(y, x * 3 + 1)
    monkeypatch.setattr(CFG, "SHIFT", -4.0)  # an attribute the source reads through a global
    x, y = run(al.kernel(by_global.fn))
    np.testing.assert_allclose(y, x * 3 - 4)
    assert len(compiles) == 3


def test_closure_values_recompile(compiles):
    for scale in (2.0, 3.0, 2.0):
        x, y = run(by_closure(scale))
        np.testing.assert_array_equal(y, x * scale)
    assert len(compiles) == 2
    assert kernel_digest(by_closure(2.0).fn) != kernel_digest(by_closure(2.5).fn)
    assert kernel_digest(by_closure(2.0).fn) == kernel_digest(by_closure(2.0).fn)


def test_helper_default_values_are_keyed():
    def make(scale):
        @al.func
        def mul(v, s=scale):
            return v * s

        @al.kernel
        def k(x, out: al.output, N, BLOCK: al.constexpr = 64):
            offs = al.arange(0, BLOCK)
            al.store(out + offs, mul(al.load(x + offs, mask=offs < N)), mask=offs < N)

        return k

    assert kernel_digest(make(2.0).fn) != kernel_digest(make(3.0).fn)


def test_nested_and_cyclic_values_are_keyed():
    def make(table):
        @al.kernel
        def k(x, out: al.output, N, BLOCK: al.constexpr = 64):
            offs = al.arange(0, BLOCK)
            al.store(out + offs, al.load(x + offs, mask=offs < N) * table[0][0][0][0], mask=offs < N)

        return k

    assert kernel_digest(make(((((1.0,),),),)).fn) != kernel_digest(make(((((2.0,),),),)).fn)
    loop = [1.0]
    loop.append(loop)
    assert kernel_digest(make((loop,)).fn) == kernel_digest(make((loop,)).fn)


def test_rebound_python_builtins_are_keyed():
    def make(pick):
        @al.kernel
        def k(x, out: al.output, N, BLOCK: al.constexpr = 64):
            offs = al.arange(0, BLOCK)
            al.store(out + offs, al.load(x + offs, mask=offs < N) * pick(2.0, 3.0), mask=offs < N)

        return k

    assert kernel_digest(make(min).fn) != kernel_digest(make(max).fn)
    assert kernel_digest(make(np.minimum).fn) == kernel_digest(make(np.maximum).fn)  # not callable in kernels


def test_constexpr_values_recompile(compiles):
    x = np.arange(100, dtype=np.float32)
    for block in (64, 128, 64):
        np.testing.assert_array_equal(np.asarray(by_global[al.cdiv(100, block)](x, 100, BLOCK=block)), x * 2 + 1)
    assert len(compiles) == 2


def test_host_cpu_is_in_the_key(monkeypatch, compiles):
    host = cache.host_cpu()
    import platform

    assert host.startswith(platform.machine())
    if sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64"):
        assert "flags=" in host or "Features=" in host
    run(by_global)
    monkeypatch.setattr(cache, "_host_cpu", host + "\nflags=another machine")
    run(al.kernel(by_global.fn))  # the same cache directory, seen from another CPU: a miss
    assert len(compiles) == 2


def test_sources_digest_sees_every_edit(tmp_path):
    root, memo = tmp_path / "src", tmp_path / "memo"
    (root / "sub").mkdir(parents=True)
    a, b = root / "a.py", root / "sub" / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 2\n")
    first = cache.sources_digest(root, [a, b], memo)
    assert len(first) == 64 and len(list(memo.iterdir())) == 1
    assert cache.sources_digest(root, [a, b], memo) == first
    st = b.stat()
    b.write_text("y = 3\n")  # same size, and the old mtime put back: the ctime still moves
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = cache.sources_digest(root, [a, b], memo)
    assert second != first
    assert cache.sources_digest(root, [a, b], tmp_path / "no_memo") == second  # the memo is only a memo
    assert cache.sources_digest(root, [b, a], memo) != second  # order and names count
    (root / "c.py").write_text(a.read_text())
    assert cache.sources_digest(root, [root / "c.py", b], memo) != second
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cache.sources_digest(root, [a, b], blocker / "memo") == second  # unwritable memo dir


def test_sources_digest_uses_the_memo(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.py").write_text("x = 1\n")
    memo = tmp_path / "memo"
    cache.sources_digest(root, [root / "a.py"], memo)
    (entry,) = memo.iterdir()
    entry.write_text("f" * 64)  # what an unchanged file set reads back, without hashing the files
    assert cache.sources_digest(root, [root / "a.py"], memo) == "f" * 64
    entry.write_text("garbage")
    assert cache.sources_digest(root, [root / "a.py"], memo) != "garbage"


def test_compiler_fingerprint_covers_the_compiler(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(cache, "sources_digest", lambda root, files, memo_dir=None: seen.extend(files) or "0" * 64)
    monkeypatch.setattr(specializations, "_fingerprint", None)
    assert specializations.compiler_fingerprint() == "0" * 16
    names = {os.path.relpath(f, os.path.dirname(compiler.__file__)).replace(os.sep, "/") for f in seen}
    assert {"compiler.py", "frontend/codegen.py", "passes/vector/stripmine.py", "targets/cpu/llvm_codegen.py",
            "language/dtypes.py", "passes/__init__.py", "targets/cpu/pipeline.py", "targets/cuda/pipeline.py",
            "dialects/tile.py"} <= names
    assert not any("__pycache__" in n or not n.endswith(".py") for n in names)


def test_cuda_key_follows_every_compiler_source(monkeypatch):
    """A change anywhere in the compiler (e.g. dtypes.promote) gives CUDA kernels a new key, so stale PTX
    is never served (the CUDA key used to hash a hand-kept subset of the files)."""
    from alloy.frontend.signature import Spec

    spec = Spec((), ())
    monkeypatch.setattr(specializations, "_fingerprint", "a" * 16)
    before = specializations.cuda_key("src", spec, "sm_90a")
    monkeypatch.setattr(specializations, "_fingerprint", "b" * 16)
    assert specializations.cuda_key("src", spec, "sm_90a") != before


def test_source_text_covers_the_block():
    # a multi-line signature at column 0, a docstring with column-0 lines, trailing comments
    src = textwrap.dedent('''
    import alloy as al


    @al.kernel
    def odd(x, out: al.output,
    N, BLOCK: al.constexpr = 64):
        """Doc
    at column 0
    """
        offs = al.arange(0, BLOCK)
        al.store(out + offs, al.load(x + offs) * (
    2.0), mask=offs < N)
        # trailing comment
    # column-0 comment

    def after():
        return 1
    ''')
    linecache.cache["<odd>"] = (len(src), None, src.splitlines(True), "<odd>")  # as IPython registers cells
    try:
        ns = {}
        exec(compile(src, "<odd>", "exec"), ns)
        fn = ns["odd"].fn
        text = _source_text(fn.__code__, ns)
        assert "".join(inspect.getsourcelines(fn)[0]) in text  # what the frontend parses
        assert text.startswith("@al.kernel") and "def after" not in text
        assert text.endswith("2.0), mask=offs < N)\n    # trailing comment\n")
    finally:
        del linecache.cache["<odd>"]


def test_cache_hit_neither_parses_nor_imports_mlir(tmp_path):
    write_version(tmp_path / "khit.py", 1)
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        sys.path.insert(0, {str(tmp_path)!r})
        from khit import apply
        x = np.arange(10, dtype=np.float32)
        y = np.asarray(apply[1](x, 10))
        assert (y == x * 2).all(), y
        print(*(m in sys.modules for m in ("mlir", "alloy.frontend.jumps", "json", "hashlib")),
              "tree" in vars(apply.source))
    """)
    env = dict(os.environ, ALLOY_CACHE_DIR=str(tmp_path / "cache"))
    outs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
            for _ in range(2)]
    assert all(r.returncode == 0 for r in outs), [r.stderr for r in outs]
    assert outs[0].stdout.split()[:2] + outs[0].stdout.split()[-1:] == ["True", "True", "True"]  # compiled
    assert outs[1].stdout.split() == ["False"] * 5  # a hit: no MLIR, no AST, neither json nor hashlib


@pytest.mark.parametrize("text", [
    '{"entry": "k", "slots": [{"dim": 0, "dtype": "float32"}], "stores": [{"mask": null, "offset": ["add", -3, 2.5]}]}',
    '{"a": true, "b": false, "c": null, "d": [], "e": {}, "f": -0.0, "g": 1e400, "h": -12, "i": "caf\u00e9"}',
    '{"a": 1, "a": 2}', '[1, [2, [3]]]', '"s"', '{"esc": "a\\nb\\u00e9\\/"}', '{"x": NaN, "y": -Infinity}',
    ' {"padded": 1}\n',
])
def test_metadata_reader_is_json(text):
    import json

    assert repr(cache._json_loads(text.encode())) == repr(json.loads(text))


@pytest.mark.parametrize("text", [b"{not json", b"{'a': (1,)}", b'{"a": True}', b'{"a": 1,}x', b"[1 2]",
                                  b"{1: 2}", b"\xc3\xbf", b"\xff"])
def test_metadata_reader_rejects_what_json_rejects(text):
    import json

    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        cache._json_loads(text)
