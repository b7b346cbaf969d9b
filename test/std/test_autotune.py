"""`@al.autotune`, the tuning tables and `alloy tune`: the fastest configuration is measured once per key,
recorded per device and read back; builtins read shipped tables and fall back to the nearest key."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import alloy as al
import alloy.config
from alloy.tuning import store


@pytest.fixture
def cache(tmp_path):
    old = alloy.config.get().cache_dir
    alloy.config.set(cache_dir=tmp_path)
    yield tmp_path
    alloy.config.set(cache_dir=old)


def make_tuned(configs):
    @al.autotune(configs=configs, key=["n"])
    @al.kernel
    def scale(x, y: al.output, n, BLOCK: al.constexpr, SLOW: al.constexpr = 0):
        offs = al.program_id(0) * BLOCK + al.arange(0, BLOCK)
        v = al.load(x + offs, mask=offs < n)
        for _ in range(SLOW):  # a configuration made slow on purpose
            v = al.sqrt(v * v + 1.0)
        al.store(y + offs, v * 2.0, mask=offs < n)

    return scale


def test_autotune_measures_once_and_records(cache, monkeypatch):
    scale = make_tuned([al.Config(BLOCK=1024, SLOW=400), al.Config(BLOCK=1024, SLOW=0)])
    x = np.arange(100_000, dtype=np.float32)
    launches = []
    real = scale.kernel.launch
    monkeypatch.setattr(scale.kernel, "launch", lambda *a, **k: launches.append(1) or real(*a, **k))
    y = scale[lambda meta: al.cdiv(meta["n"], meta["BLOCK"])](x, x.size)
    np.testing.assert_array_equal(np.asarray(y), x * 2)
    assert len(launches) == 2 * (1 + scale.tuner.reps) + 1  # every config untimed + timed, then the winner
    assert scale.best_config() == {'[100000]': al.Config(BLOCK=1024, SLOW=0)}
    table = json.loads(store.user_path("cpu").read_text())
    entry = table["entries"][scale.tuner.name]["[100000]"]
    assert entry["config"] == {"BLOCK": 1024, "SLOW": 0} and entry["seconds"] > 0
    launches.clear()
    scale[lambda meta: al.cdiv(meta["n"], meta["BLOCK"])](x, x.size)
    assert len(launches) == 1
    scale.tuner.forget()  # a new process: the table answers, nothing is measured
    scale[lambda meta: al.cdiv(meta["n"], meta["BLOCK"])](x, x.size)
    assert len(launches) == 2


def test_autotune_tunes_the_threadgroup_size(cache):
    @al.autotune(configs=[al.Config(threads=64, REPEAT=40), al.Config(threads=256, REPEAT=0)], key=["n"])
    @al.kernel
    def block_sums(x, out: al.output, n, REPEAT: al.constexpr):
        """Each threadgroup's sum (a thread-level kernel; REPEAT slows a configuration down on purpose)."""
        t = al.thread_id()
        nt = al.num_threads()
        i = al.program_id(0) * nt + t
        v = al.load(x + i, mask=i < n, other=0.0)
        for _ in range(REPEAT):
            v = al.sqrt(v * v)
        s = al.simd_reduce(v)
        buf = al.shared(32)
        if al.simd_lane() == 0:
            buf[al.simd_group()] = s
        al.barrier()
        if t == 0:
            total = 0.0
            for g in range(nt // 32):
                total += buf[g]
            al.store(out + al.program_id(0), total)

    x = np.random.default_rng(0).random(10_000).astype(np.float32)
    out = block_sums[lambda meta: al.cdiv(meta["n"], meta["threads"])](x, x.size)
    assert block_sums.best_config()["[10000]"] == al.Config(threads=256, REPEAT=0)
    pad = np.zeros(al.cdiv(x.size, 256) * 256, np.float32)
    pad[:x.size] = x
    np.testing.assert_allclose(np.asarray(out), pad.reshape(-1, 256).sum(1), rtol=1e-5)
    entry = json.loads(store.user_path("cpu").read_text())["entries"][block_sums.tuner.name]["[10000]"]
    assert entry["config"] == {"REPEAT": 0, "threads": 256}


def test_autotune_rejects_bad_configs():
    with pytest.raises(ValueError, match="not constexpr parameters"):
        make_tuned([al.Config(BLOCK=64, n=3)])
    with pytest.raises(ValueError, match=r"key names \['m'\]"):
        al.autotune(configs=[al.Config(BLOCK=64)], key=["m"])(make_tuned([al.Config(BLOCK=64)]).kernel)
    with pytest.raises(TypeError, match="decorates an @al.kernel"):
        al.autotune(configs=[al.Config(BLOCK=64)], key=[])(lambda x: x)


def test_builtins_read_tables_and_the_nearest_key(cache):
    from alloy.std import gemm

    tuner = gemm.TUNERS["dot_transpose_rhs"]
    tuner.forget()
    chosen = al.Config(BLOCK_M=16, BLOCK_N=64, BLOCK_K=64)
    store.record("cpu", tuner.name, '[[512,512,512],"float32"]', chosen.constexprs, 1e-3)
    a, b = np.ones((500, 64), np.float32), np.ones((40, 64), np.float32)
    np.testing.assert_array_equal(np.asarray(al.dot_transpose_rhs(a, b)), a @ b.T)
    assert tuner._chosen[("cpu", '[[500,40,64],"float32"]')] == chosen  # nearest stored key, same dtype
    first = tuner.configs_for("cpu")[0]
    assert tuner.nearest("cpu", '[[500,40,64],"float16"]', tuner.configs_for("cpu")) == first
    tuner.forget()


def test_shipped_tables_are_valid():
    from alloy.std import flash_attention, gemm

    tuners = {t.name: t for t in (*gemm.TUNERS.values(), flash_attention.TUNER)}
    tables = sorted(store.SHIPPED.glob("*.json"))
    assert tables, "no shipped tuning tables"
    for path in tables:
        target = path.stem.split("-")[0]
        for name, entries in json.loads(path.read_text())["entries"].items():
            assert name in tuners, f"{path.name}: unknown tuner {name}"
            for key, entry in entries.items():
                assert al.Config(**entry["config"]) in tuners[name].configs_for(target, key), (path.name, key)


def test_alloy_tune_command(cache):
    from alloy.cli.main import alloy as cli

    result = CliRunner().invoke(cli, ["tune", "dot_transpose_rhs", "--shape", "64x48x32"])
    assert result.exit_code == 0, result.output
    assert "dot_transpose_rhs" in result.output and "64x48x32" in result.output
    entries = json.loads(store.user_path("cpu").read_text())["entries"]["alloy.std.dot_transpose_rhs"]
    assert list(entries) == ['[[64,48,32],"float32"]']
    bad = CliRunner().invoke(cli, ["tune", "conv9d"])
    assert bad.exit_code == 2 and "not a tunable builtin" in bad.output
    bad = CliRunner().invoke(cli, ["tune", "matmul", "--shape", "64x48"])
    assert bad.exit_code == 2 and "MxNxK" in bad.output
