"""The sampler: greedy, filters (exact kept sets), seeds, penalties, biases, masks, logprobs."""
from __future__ import annotations

import numpy as np
import pytest

from alloy.serve.engine.sampling import Sampler, SamplingParams

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal(1000).astype(np.float32) * 3


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _support(params: SamplingParams, logits=LOGITS) -> set[int]:
    """The tokens the sampler may draw."""
    s = Sampler(params)
    ids = s.candidates(s.process(logits, ()))
    assert len(set(ids.tolist())) == ids.size
    return set(ids.tolist())


def test_greedy_is_argmax_with_log_softmax_logprob():
    tok = Sampler(SamplingParams(temperature=0)).sample(LOGITS, [])
    assert tok.id == int(np.argmax(LOGITS))
    assert tok.logprob == pytest.approx(np.log(_softmax(LOGITS.astype(np.float64))[tok.id]))
    assert len(tok.top_logprobs) == 20
    assert tok.top_logprobs[0][0] == tok.id
    assert [t for t, _ in tok.top_logprobs] == list(np.argsort(-LOGITS)[:20])


def test_top_k_keeps_exactly_the_k_best():
    assert _support(SamplingParams(top_k=7)) == set(np.argsort(-LOGITS)[:7].tolist())


@pytest.mark.parametrize("top_p", [0.05, 0.5, 0.9, 0.999])
def test_top_p_keeps_the_smallest_prefix_reaching_p(top_p):
    order = np.argsort(-LOGITS.astype(np.float64), kind="stable")
    cum = np.cumsum(_softmax(LOGITS.astype(np.float64))[order])
    n = int(np.argmax(cum >= top_p)) + 1
    assert _support(SamplingParams(top_p=top_p)) == set(order[:n].tolist())


def test_min_p_keeps_tokens_above_the_scaled_maximum():
    p = _softmax(LOGITS.astype(np.float64))
    expected = set(np.flatnonzero(p >= 0.05 * p.max()).tolist())
    assert _support(SamplingParams(min_p=0.05)) == expected


def test_filters_compose_top_k_then_top_p():
    best = np.argsort(-LOGITS)[:50]
    p = _softmax(LOGITS[best].astype(np.float64))
    n = int(np.argmax(np.cumsum(p) >= 0.6)) + 1
    assert _support(SamplingParams(top_k=50, top_p=0.6)) == set(best[:n].tolist())


def test_samples_stay_in_the_support_and_follow_the_distribution():
    params = SamplingParams(temperature=0.7, top_k=5, seed=1)
    s = Sampler(params)
    draws = [s.sample(LOGITS, []).id for _ in range(3000)]
    best = np.argsort(-LOGITS)[:5]
    assert set(draws) <= set(best.tolist())
    expected = _softmax(LOGITS[best].astype(np.float64) / 0.7)
    freq = np.array([draws.count(int(t)) for t in best]) / len(draws)
    assert np.abs(freq - expected).max() < 0.04


def test_final_logprobs_account_for_temperature_and_filter():
    tok = Sampler(SamplingParams(temperature=0.5, top_k=3, seed=3)).sample(LOGITS, [])
    best = np.argsort(-LOGITS)[:3]
    logp = np.log(_softmax(LOGITS[best].astype(np.float64) / 0.5))
    assert [t for t, _ in tok.top_logprobs] == best.tolist()
    assert np.allclose([lp for _, lp in tok.top_logprobs], logp)
    assert tok.logprob == pytest.approx(dict(tok.top_logprobs)[tok.id])


def test_seed_reproducibility():
    a = Sampler(SamplingParams(temperature=1.0, seed=42))
    b = Sampler(SamplingParams(temperature=1.0, seed=42))
    c = Sampler(SamplingParams(temperature=1.0, seed=43))
    ra = [a.sample(LOGITS, []).id for _ in range(50)]
    assert ra == [b.sample(LOGITS, []).id for _ in range(50)]
    assert ra != [c.sample(LOGITS, []).id for _ in range(50)]


def test_repeat_penalty_divides_positive_and_multiplies_negative():
    logits = np.array([2.0, -2.0, 1.0, 0.5])
    x = Sampler(SamplingParams(repeat_penalty=2.0)).process(logits, [0, 1, 1])
    assert np.allclose(x, [1.0, -4.0, 1.0, 0.5])


def test_repeat_last_n_limits_the_window():
    logits = np.array([2.0, 2.0, 2.0])
    x = Sampler(SamplingParams(repeat_penalty=2.0, repeat_last_n=2)).process(logits, [0, 1, 2])
    assert np.allclose(x, [2.0, 1.0, 1.0])
    x = Sampler(SamplingParams(repeat_penalty=2.0, repeat_last_n=0)).process(logits, [0, 1, 2])
    assert np.allclose(x, logits)
    x = Sampler(SamplingParams(repeat_penalty=2.0, repeat_last_n=-1)).process(logits, [0] + [1] * 100)
    assert np.allclose(x, [1.0, 1.0, 2.0])


def test_presence_and_frequency_penalties():
    logits = np.zeros(4)
    x = Sampler(SamplingParams(presence_penalty=0.5, frequency_penalty=0.25)).process(logits, [1, 2, 2, 2])
    assert np.allclose(x, [0.0, -0.75, -1.25, 0.0])


def test_logit_bias_changes_the_greedy_choice():
    worst = int(np.argmin(LOGITS))
    tok = Sampler(SamplingParams(temperature=0, logit_bias={worst: 100.0})).sample(LOGITS, [])
    assert tok.id == worst
    with pytest.raises(ValueError, match="logit_bias"):
        Sampler(SamplingParams(logit_bias={5000: 1.0})).sample(LOGITS, [])


def test_mask_restricts_every_mode():
    mask = np.zeros(LOGITS.size, bool)
    allowed = [3, 500, 999]
    mask[allowed] = True
    assert Sampler(SamplingParams(temperature=0)).sample(LOGITS, [], mask).id == \
        allowed[int(np.argmax(LOGITS[allowed]))]
    s = Sampler(SamplingParams(temperature=1.5, seed=0))
    assert {s.sample(LOGITS, [], mask).id for _ in range(200)} == set(allowed)
    tok = Sampler(SamplingParams(temperature=0)).sample(LOGITS, [], mask)
    assert len(tok.top_logprobs) == 3
    with pytest.raises(ValueError, match="no token"):
        Sampler(SamplingParams()).sample(LOGITS, [], np.zeros(LOGITS.size, bool))
    with pytest.raises(ValueError, match="mask has"):
        Sampler(SamplingParams()).sample(LOGITS, [], np.ones(10, bool))


@pytest.mark.parametrize("field,value", [("temperature", -1), ("top_p", 0.0), ("top_k", -1),
                                         ("min_p", 1.5), ("repeat_penalty", 0)])
def test_out_of_range_parameters_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**{field: value})


def test_top_p_and_min_p_keep_the_shorter_prefix():
    order = np.argsort(-LOGITS.astype(np.float64), kind="stable")
    p = _softmax(LOGITS.astype(np.float64))[order]
    by_top_p = int(np.argmax(np.cumsum(p) >= 0.95)) + 1
    by_min_p = int(np.count_nonzero(p >= 0.02 * p[0]))
    n = min(by_top_p, by_min_p)
    assert by_top_p != by_min_p
    assert _support(SamplingParams(top_p=0.95, min_p=0.02)) == set(order[:n].tolist())
    assert _support(SamplingParams(top_p=0.3, min_p=0.02)) == set(
        order[: int(np.argmax(np.cumsum(p) >= 0.3)) + 1].tolist())


@pytest.mark.parametrize("seed", range(5))
def test_top_indices_is_an_exact_partial_sort(seed):
    from alloy.serve.engine.sampling import _top_indices

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(50_000)
    x[rng.integers(0, x.size, 1000)] = -np.inf
    x[rng.integers(0, x.size, 50)] = 2.5          # ties
    for k in (1, 20, 300):
        got = _top_indices(x, k)
        assert np.array_equal(np.sort(x[got])[::-1], np.sort(x)[::-1][:k])
        assert np.all(np.diff(x[got]) <= 0)
