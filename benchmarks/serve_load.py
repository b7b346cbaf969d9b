"""``alloy serve`` under concurrent streaming clients, against llama.cpp's ``llama-server -np 8 -cb``
on the same model and threads, plus the prefix cache's second-turn TTFT and prompt-lookup decoding.

    python benchmarks/serve_load.py [--llama-server PATH] [--model smollm2:135m] [--threads 2]
                                    [--clients 1,8,32,64] [--max-tokens 32] [--rounds 1]

Each row: N clients at once, each one streamed chat completion (``max_tokens`` tokens at most) —
throughput (generated tokens / wall time), time to first token p50/p99, and 503s. Both servers run
on loopback, one at a time, each with a bounded request count. Goals (serving-engine issue): at 8
clients >= 4x the single-client throughput; >= 1.0x llama-server at every concurrency; 64 clients with
``--max-queue 64`` all complete; a second chat turn's TTFT <= 0.3x the first; prompt lookup >= 1.5x
tokens/s on a code-editing task. Prints a table; asserts nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

import httpx

TOPICS = ["a lighthouse", "a robot", "the sea", "a city at night", "a mountain", "a garden", "a train",
          "an old map", "a violin", "winter", "a library", "a storm", "a market", "the moon", "a bridge", "a forest"]
CODE = '''def total_price(items, tax_rate):
    subtotal = 0
    for item in items:
        if item.quantity <= 0:
            continue
        subtotal += item.price * item.quantity
    discount = 0.1 * subtotal if subtotal > 100 else 0
    tax = (subtotal - discount) * tax_rate
    return subtotal - discount + tax
'''


MODEL_NAME = "smollm2:135m"   # the name requests carry (set from --model)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, limit: float = 300) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not become ready in {limit} s")


async def one_chat(client: httpx.AsyncClient, url: str, messages: list, max_tokens: int) -> dict:
    t0 = time.perf_counter()
    first, tokens, status = None, 0, 0
    body = {"model": MODEL_NAME, "messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        status = r.status_code
        if status == 200:
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                if first is None and any((c.get("delta") or {}).get("content") for c in chunk.get("choices", [])):
                    first = time.perf_counter() - t0
        else:
            await r.aread()
    return {"status": status, "ttft": first, "tokens": tokens, "seconds": time.perf_counter() - t0}


async def concurrent(url: str, n: int, max_tokens: int) -> dict:
    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*[
            one_chat(client, url, [{"role": "user", "content": f"Write a short story about {TOPICS[i % len(TOPICS)]} "
                                                                 f"(story {i})."}], max_tokens)
            for i in range(n)])
        wall = time.perf_counter() - t0
    ok = [r for r in results if r["status"] == 200]
    ttfts = sorted(r["ttft"] for r in ok if r["ttft"] is not None)
    return {"clients": n, "tokens_per_second": sum(r["tokens"] for r in ok) / wall,
            "ttft_p50": statistics.median(ttfts) if ttfts else None,
            "ttft_p99": ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))] if ttfts else None,
            "rejected": sum(r["status"] == 503 for r in results), "failed": sum(r["status"] not in (200, 503)
                                                                                for r in results)}


async def second_turn(url: str) -> tuple[float, float]:
    """TTFT of a long first chat turn and of the follow-up turn that repeats it."""
    system = "You are a careful assistant. " + " ".join(f"Rule {i}: answer briefly and politely." for i in range(40))
    turn = [{"role": "system", "content": system}, {"role": "user", "content": "Name a yellow fruit."}]
    async with httpx.AsyncClient(timeout=600) as client:
        first = await one_chat(client, url, turn, 8)
        turn += [{"role": "assistant", "content": "A banana."}, {"role": "user", "content": "And a red one?"}]
        second = await one_chat(client, url, turn, 8)
    return first["ttft"], second["ttft"]


async def code_edit(url: str, max_tokens: int) -> float:
    messages = [{"role": "user", "content": "Here is a Python function:\n\n" + CODE + "\nRewrite the function with "
                                            "the variable subtotal renamed to net. Output the complete function."}]
    async with httpx.AsyncClient(timeout=600) as client:
        r = await one_chat(client, url, messages, max_tokens)
    return r["tokens"] / r["seconds"]


def run_server(cmd: list[str], url: str, env=None) -> subprocess.Popen:
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_ready(url, process)
    return process


def alloy_cmd(args, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "alloy.cli.main", "serve", "-m", args.model, "--port", str(port),
            "--max-queue", "64", "-np", "8", "--ctx", "2048", *extra]


def measure(name: str, cmd: list[str], url: str, args, rows: list) -> None:
    process = run_server(cmd, url)
    try:
        asyncio.run(concurrent(url, 2, 4))   # warm-up
        for n in args.clients:
            for _ in range(args.rounds):
                rows.append({"server": name, **asyncio.run(concurrent(url, n, args.max_tokens))})
                print(json.dumps(rows[-1]), flush=True)
        t1, t2 = asyncio.run(second_turn(url))
        rows.append({"server": name, "test": "second turn", "ttft_first": t1, "ttft_second": t2})
        print(json.dumps(rows[-1]), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--llama-server", help="path of llama.cpp's llama-server (the peer)")
    parser.add_argument("--model", default="smollm2:135m")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",")]
    global MODEL_NAME
    MODEL_NAME = args.model
    rows: list[dict] = []

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    measure("alloy", alloy_cmd(args, port), url, args, rows)
    if args.llama_server:
        from alloy.serve.gguf.resolve import resolve_model

        path = str(resolve_model(args.model).path)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        measure("llama-server", [args.llama_server, "-m", path, "--port", str(port), "-np", "8", "-cb", "-t",
                                 str(args.threads), "-c", str(8 * 2048)], url, args, rows)

    for spec in ("none", "pld"):   # prompt-lookup decoding on a code-editing task, alternating
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        process = run_server(alloy_cmd(args, port, "--spec", spec), url)
        try:
            asyncio.run(code_edit(url, 8))
            speeds = [asyncio.run(code_edit(url, 160)) for _ in range(max(2, args.rounds))]
        finally:
            process.terminate()
            process.wait(timeout=60)
        rows.append({"server": "alloy", "test": f"code edit, spec {spec}", "tokens_per_second": max(speeds),
                     "median": statistics.median(speeds)})
        print(json.dumps(rows[-1]), flush=True)

    print()
    print(f"{'server':<13} {'clients':>7} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p99':>9} {'503':>4}")
    for r in rows:
        if "clients" in r:
            p50 = f"{r['ttft_p50']:.2f}" if r["ttft_p50"] is not None else "-"
            p99 = f"{r['ttft_p99']:.2f}" if r["ttft_p99"] is not None else "-"
            print(f"{r['server']:<13} {r['clients']:>7} {r['tokens_per_second']:>8.1f} {p50:>9} {p99:>9} "
                  f"{r['rejected']:>4}")
        elif "ttft_first" in r and r["ttft_first"] and r["ttft_second"]:
            print(f"{r['server']:<13} second chat turn TTFT {r['ttft_second']:.3f} s vs first {r['ttft_first']:.3f} s "
                  f"({r['ttft_second'] / r['ttft_first']:.2f}x)")
        elif "tokens_per_second" in r:
            print(f"{r['server']:<13} {r['test']}: {r['tokens_per_second']:.1f} tokens/s best, {r['median']:.1f} median")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
