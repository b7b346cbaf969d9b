"""Greedy decoding of the packaged models against llama.cpp's own (llama-server
/completion at temperature 0, recorded in fixtures/greedy_*.json).

llama.cpp quantizes activations for its quantized matmuls and keeps the KV cache
in float16, so its logits differ slightly from our float32 ones; near-ties late
in a generation may then break differently. Both engines (the numpy reference and the compiled
Alloy kernels) are checked. So two checks per case:

- free-running greedy: the first ``MATCH[model]`` tokens equal llama.cpp's (as
  many as agree here for every case; the margins of our choices there are far
  above float32 noise);
- teacher-forced over all 16 tokens: llama.cpp's token is within ``NEAR_TIE``
  of our best logit at every step (its choices and ours differ only in near-ties).
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from alloy.serve.gguf.reader import GGUFFile
from alloy.serve.gguf.resolve import resolve_model
from alloy.serve.generate import engine_ops
from alloy.serve.models import model_from_gguf

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
MATCH = {"gemma3:270m": 15, "smollm2:135m": 4}
NEAR_TIE = 0.5
CASES = {
    "gemma3:270m": ["greedy_gemma3_270m.json",
                    "greedy_gemma3_270m_long.json"],   # 864-token prompt: crosses the 512-token sliding window
    "smollm2:135m": ["greedy_smollm2_135m.json"],
}


@pytest.fixture(scope="module", params=[(m, e) for m in sorted(CASES) for e in ("reference", "alloy")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def golden(request):
    ref, engine = request.param
    cases = []
    for name in CASES[ref]:
        fixture = json.loads((FIXTURES / name).read_text())
        assert fixture["model"] == ref
        cases += fixture["cases"]
    model = model_from_gguf(GGUFFile(resolve_model(ref).path), engine_ops(engine))
    return ref, model, cases


def _greedy(model, prompt_ids: list[int], n: int) -> list[int]:
    cache = model.new_cache(len(prompt_ids) + n)
    logits = model.forward(prompt_ids, cache, last_only=True)[-1]
    out: list[int] = []
    while True:
        out.append(int(np.argmax(logits)))
        if len(out) == n:
            return out
        logits = model.forward(out[-1:], cache)[-1]


@pytest.mark.slow
def test_greedy_tokens_match_llama_cpp(golden):
    name, model, cases = golden
    for case in cases:
        expected = case["ids"][:MATCH[name]]
        got = _greedy(model, case["prompt_ids"], len(expected))
        assert got == expected, f"prompt {case['prompt']!r}: ours {got}, llama.cpp {expected}"


@pytest.mark.slow
def test_llama_cpp_choices_are_ours_or_near_ties(golden):
    name, model, cases = golden
    for case in cases:
        ids = case["prompt_ids"] + case["ids"]
        logits = model.forward(ids, model.new_cache(len(ids)))[len(case["prompt_ids"]) - 1:-1]
        for step, (row, tok) in enumerate(zip(logits, case["ids"])):
            gap = float(row.max() - row[tok])
            assert gap <= NEAR_TIE, (f"prompt {case['prompt']!r} step {step}: llama.cpp chose {tok}, "
                                     f"{gap:.3f} below our best {int(row.argmax())}")
