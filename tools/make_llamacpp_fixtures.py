"""Make the llama.cpp golden fixtures under test/serve/fixtures/ (run by hand, never by tests).

For each packaged model (gemma3:270m, smollm2:135m) this starts the given
llama.cpp build's ``llama-server`` (``-c 2048 -t 2``) on a free port and saves

* ``tokens_<model>.json``: ``POST /tokenize`` (``add_special: true``, special-token
  text parsed) of a fixed list of strings;
* ``greedy_<model>.json``: ``POST /completion`` of four raw prompts (no chat
  template) with ``n_predict 16, temperature 0, top_k 1, seed 0``, the prompt ids
  from ``/tokenize`` with ``add_special: true`` as the completion sees them.

With ``--bench`` it also runs ``llama-bench -p 512 -n 128 -t 2`` on both models
and prints its table. How the fixtures in the repo were made (llama.cpp 0c1e570,
the ``vendor/llama.cpp`` of the ``llama-cpp-python==0.3.36`` sdist, built on CPU)::

    cmake -B build -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release -DLLAMA_BUILD_TESTS=OFF
    cmake --build build -j2 --target llama-server llama-tokenize llama-bench
    PYTHONPATH=python python tools/make_llamacpp_fixtures.py LLAMA_CPP/build/bin --bench
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from alloy.serve.gguf.resolve import resolve_model

MODELS = {"gemma3_270m": "gemma3:270m", "smollm2_135m": "smollm2:135m"}

TOKEN_CASES = [
    "Hello world",
    "",
    "The quick brown fox jumps over the lazy dog.",
    " leading and trailing spaces ",
    "naïve café, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어",
    "emoji: 🤖🚀👍🏽 and a flag 🇫🇷",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "a  b   c\t\td\n\n\ne    \n  f",
    "\n\n",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "3.14159 1234567890 -42 1e-5 0x1F 100,000",
    "Total:  1234\r\n  42 items'll  99\t\t7",
    "don't I'll we're THEY'RE",
    "https://example.com/path?q=1&x=ü — «quotes» … ‘single’",
]

GREEDY_PROMPTS = ["The capital of France is", "def fibonacci(n):", "Once upon a time", "1, 2, 3, 4,"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(port: int, route: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{route}", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    raise RuntimeError("llama-server did not become ready")


def llama_cpp_commit(bin_dir: pathlib.Path) -> str:
    out = subprocess.run([bin_dir / "llama-server", "--version"], capture_output=True, text=True)
    found = re.search(r"commit ([0-9a-f]{7,})|version: \d+ \(([0-9a-f]+)\)", out.stdout + out.stderr)
    if not found:
        raise RuntimeError(f"cannot read the llama.cpp commit from llama-server --version: {out.stderr[-500:]}")
    return found.group(1) or found.group(2)


def make_fixtures(bin_dir: pathlib.Path, out_dir: pathlib.Path, key: str, model: pathlib.Path, commit: str):
    port = _free_port()
    proc = subprocess.Popen([bin_dir / "llama-server", "-m", model, "-c", "2048", "-t", "2", "--port", str(port),
                             "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port, proc)
        cases = [{"text": t, "ids": _post(port, "/tokenize", {"content": t, "add_special": True})["tokens"]}
                 for t in TOKEN_CASES]
        tokens = {"model": MODELS[key], "llama_cpp": commit, "add_special": True, "cases": cases}
        greedy_cases = []
        for prompt in GREEDY_PROMPTS:
            prompt_ids = _post(port, "/tokenize", {"content": prompt, "add_special": True})["tokens"]
            r = _post(port, "/completion", {"prompt": prompt, "n_predict": 16, "temperature": 0, "top_k": 1,
                                            "seed": 0, "cache_prompt": False, "return_tokens": True})
            greedy_cases.append({"prompt": prompt, "prompt_ids": prompt_ids, "ids": r["tokens"], "text": r["content"]})
        greedy = {"model": MODELS[key], "llama_cpp": commit, "cases": greedy_cases}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for name, data in ((f"tokens_{key}.json", tokens), (f"greedy_{key}.json", greedy)):
        (out_dir / name).write_text(_dump(data), encoding="utf-8")
        print(f"wrote {out_dir / name}")


def _dump(data: dict) -> str:
    """JSON with one case per line, so diffs stay readable."""
    head = {k: v for k, v in data.items() if k != "cases"}
    lines = [json.dumps(c, ensure_ascii=False) for c in data["cases"]]
    return json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n' + ",\n".join(lines) + "\n]}\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bin_dir", type=pathlib.Path, help="llama.cpp build/bin with llama-server and llama-bench")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path(__file__).parents[1] / "test/serve/fixtures")
    ap.add_argument("--bench", action="store_true", help="also run llama-bench -p 512 -n 128 -t 2")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    commit = llama_cpp_commit(args.bin_dir)
    paths = {key: resolve_model(name).path for key, name in MODELS.items()}
    for key, path in paths.items():
        make_fixtures(args.bin_dir, args.out, key, path, commit)
    if args.bench:
        for key, path in paths.items():
            print(f"## {MODELS[key]} (llama.cpp {commit})", flush=True)
            subprocess.run([args.bin_dir / "llama-bench", "-m", path, "-p", "512", "-n", "128", "-t", "2"], check=True)


if __name__ == "__main__":
    sys.exit(main())
