"""`alloy serve` (subprocess, ALLOY_PORT), `alloy run` and `alloy launch claude`."""

import json
import os
import pathlib
import socket
import stat
import subprocess
import sys
import textwrap

import httpx
import pytest
from click.testing import CliRunner

import alloy
from alloy.cli.launch_cmd import launch_cmd
from alloy.cli.run_cmd import run_cmd

MODEL = "smollm2:135m"
PKG_ROOT = str(pathlib.Path(alloy.__file__).resolve().parents[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with_alloy(**extra):
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_serve_subprocess_uses_alloy_port():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from alloy.cli.serve_cmd import serve_cmd; serve_cmd()",
         "-m", MODEL, "--ctx", "256"],
        env=env_with_alloy(ALLOY_PORT=str(port)), stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if line.startswith("serving"):
                break
        else:
            pytest.fail(f"server exited with {proc.wait()}")
        assert f"http://127.0.0.1:{port}" in line
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health == {"status": "ok", "model": MODEL, "queue": {"waiting": 0, "running": 0}}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_serve_rejects_bad_alloy_port():
    from alloy.cli.serve_cmd import serve_cmd

    r = CliRunner().invoke(serve_cmd, ["-m", MODEL], env={"ALLOY_PORT": "http"})
    assert r.exit_code == 2 and "ALLOY_PORT" in r.output


def test_run_one_prompt():
    r = CliRunner().invoke(run_cmd, [MODEL, "What is the capital of France?", "--temperature",
                                     "0", "--max-tokens", "8"])
    assert r.exit_code == 0, r.output
    assert "Paris" in r.output


def test_run_unknown_model():
    r = CliRunner().invoke(run_cmd, ["no-such-model:1b", "hi"])
    assert r.exit_code == 1 and "no-such-model:1b" in r.output


def test_launch_claude_points_the_app_at_the_server(tmp_path):
    """A stand-in ``claude`` on PATH makes a real Anthropic-client call with the env it got."""
    report = tmp_path / "report.json"
    fake = tmp_path / "claude"
    fake.write_text(f"#!{sys.executable}\n" + textwrap.dedent(f"""
        import json, os, sys
        import anthropic
        c = anthropic.Anthropic(max_retries=0)  # reads ANTHROPIC_BASE_URL / AUTH_TOKEN
        m = c.messages.create(model=os.environ["ANTHROPIC_MODEL"], max_tokens=2,
                              messages=[{{"role": "user", "content": "hi"}}])
        json.dump({{"args": sys.argv[1:], "model": m.model, "stop": m.stop_reason,
                   "small": os.environ["ANTHROPIC_SMALL_FAST_MODEL"]}},
                  open({str(report)!r}, "w"))
    """))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = env_with_alloy(PATH=str(tmp_path) + os.pathsep + os.environ["PATH"])
    env.pop("ANTHROPIC_API_KEY", None)
    r = CliRunner().invoke(launch_cmd, ["claude", "-m", MODEL, "--port", "0", "--ctx", "256",
                                        "--", "-p", "hello"], env=env)
    assert r.exit_code == 0, r.output
    got = json.loads(report.read_text())
    assert got == {"args": ["-p", "hello"], "model": MODEL, "stop": "max_tokens", "small": MODEL}


def test_launch_without_claude_installed(tmp_path):
    r = CliRunner().invoke(launch_cmd, ["claude", "-m", MODEL], env={"PATH": str(tmp_path)})
    assert r.exit_code == 1 and "npm install -g @anthropic-ai/claude-code" in r.output
