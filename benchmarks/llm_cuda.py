"""The compiled LLM engine on the CUDA target: logits against the numpy reference engine, then pp/tg
throughput in llama-bench's shape.

    python benchmarks/llm_cuda.py --compile-only MODEL.gguf   # here, no GPU: compile every kernel to PTX
    python benchmarks/llm_cuda.py MODEL.gguf                  # on the GPU, from the carried kernel cache

MLIR does not fit on the lent GPU machine, so the kernels are compiled here first: the compile-only run
pushes the same token counts through the model with host arrays bound to the CUDA target (the driver is
never called), filling ALLOY_CACHE_DIR with the PTX of every specialisation the GPU run will need.
Peer figures for the H200 (llama.cpp, same synthetic model) are in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import alloy.config
from alloy.serve import bench
from alloy.serve.gguf.reader import GGUFFile
from alloy.serve.models import model_from_gguf
from alloy.serve.ops.alloy import AlloyOps
from alloy.serve.ops.arrays import HostArrays
from alloy.serve.ops.reference import ReferenceOps

PROMPT = [1, 17, 300, 4242, 9, 77, 5, 1024]


def check(model, file) -> None:
    """Prefill and two decode steps against the reference engine."""
    reference = model_from_gguf(file, ReferenceOps())
    cache, cache_r = model.new_cache(64), reference.new_cache(64)
    for tokens in (PROMPT, [3], [4]):
        got, expected = model.forward(tokens, cache), reference.forward(tokens, cache_r)
        err = float(np.abs(got - expected).max() / np.abs(expected).max())
        same = float((got.argmax(-1) == expected.argmax(-1)).mean())
        print(f"{len(tokens)} tokens: max error {err:.2e} of the largest logit, argmax agreement {same:.2f}")
        assert err < 1e-3, err


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a .gguf path")
    parser.add_argument("--compile-only", action="store_true")
    parser.add_argument("-p", type=int, default=512)
    parser.add_argument("-n", type=int, default=128)
    parser.add_argument("-r", type=int, default=3)
    args = parser.parse_args()
    alloy.config.set(target="cuda")
    file = GGUFFile(args.model)
    if args.compile_only:
        from alloy.runtime import cuda

        cuda.compile_only(True)
        ops = AlloyOps("cuda", arrays=HostArrays())
    else:
        ops = AlloyOps("cuda")
    t = time.perf_counter()
    model = model_from_gguf(file, ops)
    print(f"loaded in {time.perf_counter() - t:.1f} s")
    if args.compile_only:
        model.forward(PROMPT, model.new_cache(64))
        for _ in range(2):
            bench.bench(model, engine="alloy", model_name=args.model, quant="", threads=0, n_prompt=args.p,
                        n_gen=2, repetitions=1)
        print("compiled")
        return
    check(model, file)
    rows = bench.bench(model, engine="alloy-cuda", model_name=args.model, quant="", threads=0, n_prompt=args.p,
                       n_gen=args.n, repetitions=args.r)
    for row in rows:
        print(f"{row.test}: {row.tokens_per_second:.1f} ± {row.std:.1f} tokens/s (samples {row.samples})")


if __name__ == "__main__":
    main()
