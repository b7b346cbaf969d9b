"""alloy_torch against eager torch and Inductor on the CPU: the spec's MLP (32x64) inference, a
GPT-2-124M-shaped model from its config (1x16 tokens) and an MLP training step; first-call compile
times beside them.

    python benchmarks/torch_models.py [--no-gpt2]

Goals (torch-backend issue, CPU): inference >= 1.0x Inductor; training step >= 1.0x eager; first-call
compile <= 0.5x Inductor's. Prints ratios (medians and best-of-N); asserts nothing. "First call" is
timed in this process after torch._dynamo.reset(): Alloy's compiled kernels may already be in its
disk cache from an earlier run, as Inductor's may be in its own.
"""
from __future__ import annotations

import argparse
import copy
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

import alloy_torch  # noqa: F401  (registers the "alloy" backend)
from common import Row, compare, print_rows


def _first_call(model, backend, *inputs):
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend)
    t = time.perf_counter()
    compiled(*inputs)
    return compiled, time.perf_counter() - t


def inference_rows(name: str, model, *inputs, repeat: int = 20) -> list[Row]:
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alloy_fn, alloy_first = _first_call(model, "alloy", *inputs)
        inductor_fn, inductor_first = _first_call(model, "inductor", *inputs)
        torch.testing.assert_close(alloy_fn(*inputs), model(*inputs), atol=1e-3, rtol=1e-3)
        t = compare({"alloy": lambda: alloy_fn(*inputs), "inductor": lambda: inductor_fn(*inputs),
                     "eager": lambda: model(*inputs)}, repeat=repeat)
    return [Row(f"{name} inference", t["alloy"], "Inductor", t["inductor"], "speed", 1.0),
            Row(f"{name} inference", t["alloy"], "eager", t["eager"], "speed", None),
            Row(f"{name} first call (compile)", alloy_first, "Inductor first call", inductor_first, "speed", 2.0,
                "goal: <= 0.5x Inductor's time")]


def training_rows(repeat: int = 20) -> list[Row]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 1))
    eager = copy.deepcopy(model)
    x, y = torch.randn(32, 64), torch.randn(32, 1)
    compiled = torch.compile(model, backend="alloy")
    opt, eager_opt = torch.optim.AdamW(model.parameters(), lr=1e-3), torch.optim.AdamW(eager.parameters(), lr=1e-3)

    def step(fn, o):
        o.zero_grad()
        F.mse_loss(fn(x), y).backward()
        o.step()

    t = compare({"alloy": lambda: step(compiled, opt), "eager": lambda: step(eager, eager_opt)}, repeat=repeat)
    return [Row("MLP 32x64 training step (fwd+bwd+AdamW)", t["alloy"], "eager", t["eager"], "speed", 1.0,
                "opt.step runs eagerly on both sides")]


def run(gpt2: bool = True) -> list[Row]:
    torch.manual_seed(0)
    rows = inference_rows("MLP 32x64", nn.Sequential(nn.Linear(64, 128), nn.LayerNorm(128), nn.GELU(),
                                                     nn.Linear(128, 32)), torch.randn(32, 64))
    rows += training_rows()
    if gpt2:
        import transformers

        cfg = transformers.GPT2Config()  # the 124M shape, random weights
        model = transformers.GPT2LMHeadModel(cfg)
        ids = torch.randint(0, cfg.vocab_size, (1, 16))

        class Logits(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, ids):
                return self.model(input_ids=ids).logits

        rows += inference_rows("GPT-2-124M shape 1x16", Logits(), ids, repeat=10)
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-gpt2", action="store_true", help="skip the GPT-2-124M-shaped model")
    print_rows(run(gpt2=not parser.parse_args().no_gpt2))
