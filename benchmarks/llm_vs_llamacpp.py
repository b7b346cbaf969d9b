"""The compiled LLM engine against llama.cpp's llama-bench: pp512 and tg128 on the same machine,
same threads, in alternating rounds (one llama-bench run, then one Alloy run, ``--rounds`` times).

    python benchmarks/llm_vs_llamacpp.py --llama-bench PATH [--threads 2] [--rounds 3]
                                         [--model gemma3:270m --model smollm2:135m --model x.gguf]

Build llama-bench as ../shared/toolchain/PEERS.md says. Goals (compiled-engine issue, CPU):
pp512 >= 1.0x and tg128 >= 1.0x llama-bench on each model. Prints mean and best-of-rounds ratios;
asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess

import alloy.config
from alloy.serve import bench
from alloy.serve.generate import load
from alloy.serve.gguf.resolve import resolve_model

MODELS = ("smollm2:135m", "gemma3:270m")


def llama_bench(exe: str, path: str, threads: int, n_prompt: int, n_gen: int) -> dict[str, float]:
    out = subprocess.run([exe, "-m", path, "-p", str(n_prompt), "-n", str(n_gen), "-r", "1", "-t", str(threads),
                          "-o", "json"], check=True, capture_output=True, text=True).stdout
    rows = json.loads(out)
    return {("pp" if r["n_prompt"] else "tg") + str(r["n_prompt"] or r["n_gen"]): r["avg_ts"] for r in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llama-bench", required=True, help="path of llama.cpp's llama-bench")
    parser.add_argument("--model", action="append", help="model reference or .gguf path (repeatable)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    args = parser.parse_args()
    alloy.config.set(num_threads=args.threads)
    print(f"device: {bench.device_name()}, {args.threads} threads, {args.rounds} alternating rounds")
    print(f"{'model':<22} {'test':<6} {'llama.cpp t/s':>14} {'alloy t/s':>10} {'ratio':>6} {'best':>6}")
    for ref in args.model or MODELS:
        resolved = resolve_model(ref)
        model, _ = load(resolved.path)
        peer: dict[str, list[float]] = {}
        ours: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for test, rate in llama_bench(args.llama_bench, str(resolved.path), args.threads, args.p, args.n).items():
                peer.setdefault(test, []).append(rate)
            for row in bench.bench(model, engine="alloy", model_name=resolved.name, quant="", threads=args.threads,
                                   n_prompt=args.p, n_gen=args.n, repetitions=1):
                ours.setdefault(row.test, []).append(row.tokens_per_second)
        for test in ours:
            p, a = statistics.fmean(peer[test]), statistics.fmean(ours[test])
            print(f"{resolved.name:<22} {test:<6} {p:>14.1f} {a:>10.1f} {a / p:>6.2f} {max(ours[test]) / max(peer[test]):>6.2f}")


if __name__ == "__main__":
    main()
