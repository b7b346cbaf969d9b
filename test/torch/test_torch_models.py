"""alloy_torch on whole models: transformers GPT-2, Llama (grouped-query) and Qwen3 from tiny configs
(logits against eager), and training loops whose losses track eager's."""
import copy
import itertools
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_helpers import AVX2_FALLBACKS, Recorder

transformers = pytest.importorskip("transformers")

# what may still run eagerly in these models: integer position arithmetic and lifted constants
INTEGER_OPS = {"aten.arange.start_step", "aten.add.Tensor", "aten.lift_fresh_copy.default", "aten._to_copy.default"}

CONFIGS = {
    "gpt2": lambda: transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=128, n_positions=64,
                                            bos_token_id=0, eos_token_id=0),
    "llama": lambda: transformers.LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                              num_attention_heads=4, num_key_value_heads=2, vocab_size=128),
    "qwen3": lambda: transformers.Qwen3Config(num_hidden_layers=2, hidden_size=64, intermediate_size=128,
                                              num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                              vocab_size=128),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_causal_lm_logits_match_eager(name):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(CONFIGS[name]()).eval()
    ids = torch.randint(0, 128, (2, 16))
    with torch.no_grad(), Recorder() as rec, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = model(input_ids=ids).logits
        out = torch.compile(model, backend="alloy")(input_ids=ids).logits
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    report = rec.report()
    assert set(report.fallback_ops) <= INTEGER_OPS, report.fallback_ops
    assert report.alloy_nodes > 50 and report.fallback_nodes <= 8, report
    assert report.pattern_fusions == PATTERNS[name], report.pattern_fusions


# per model (2 layers): GPT-2's 8 Conv1D layers take their bias in the GEMM (its GELU is written out as tanh
# arithmetic, its QKV is one Conv1D already); Llama and Qwen3 norm with RMSNorm (Qwen3 also each head's q and
# k), gate with SwiGLU, project q, k and v in one GEMM and rotate q and k in one kernel each
PATTERNS = {
    "gpt2": {"GEMM + bias/activation as al.linear": 8},
    "llama": {"RMSNorm as al.rms_norm": 5, "gated MLP as al.gated_linear": 2,
              "batched projections (QKV) as one al.linear": 2, "rotary embedding as one kernel": 4},
    "qwen3": {"RMSNorm as al.rms_norm": 9, "gated MLP as al.gated_linear": 2,
              "batched projections (QKV) as one al.linear": 2, "rotary embedding as one kernel": 4},
}


def _train(model, step_fn, opt_cls, steps=20, **opt_kw):
    opt = opt_cls([p for p in model.parameters() if p.requires_grad], **opt_kw)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = step_fn(model)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("opt_cls,opt_kw", [(torch.optim.AdamW, {"lr": 0.05}),
                                            (torch.optim.SGD, {"lr": 0.05, "momentum": 0.9}),
                                            (torch.optim.RMSprop, {"lr": 0.01})])
def test_mlp_training_tracks_eager(opt_cls, opt_kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 1))
    eager = copy.deepcopy(model)
    x, y = torch.randn(32, 64), torch.randn(32, 1)
    compiled = torch.compile(model, backend="alloy")
    with Recorder() as rec:
        got = _train(model, lambda m: F.mse_loss(compiled(x), y), opt_cls, **opt_kw)
    want = _train(eager, lambda m: F.mse_loss(m(x), y), opt_cls, **opt_kw)
    assert got[-1] < got[0] * 0.5
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-4, rtol=1e-3)
    report = rec.report()
    assert report.fallback_nodes == 0 and report.alloy_nodes > 10, report


class TinyLM(nn.Module):
    """Embedding, a causal attention block with LayerNorm and a GELU MLP, cross-entropy."""

    def __init__(self, vocab=96, dim=32, heads=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, vocab)
        self.heads = heads

    def forward(self, ids, labels):
        b, t = ids.shape
        h = self.emb(ids)
        q, k, v = self.qkv(self.ln1(h)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, -1)
        h = h + self.proj(a)
        h = h + self.mlp(self.ln2(h))
        logits = self.head(h)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def test_tiny_lm_training_tracks_eager():
    torch.manual_seed(0)
    model = TinyLM()
    eager = copy.deepcopy(model)
    ids = torch.randint(0, 96, (4, 12))
    labels = torch.roll(ids, -1, dims=1)
    compiled = torch.compile(model, backend="alloy")
    with Recorder() as rec, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = _train(model, lambda m: compiled(ids, labels), torch.optim.Adam, lr=1e-2)
    want = _train(eager, lambda m: m(ids, labels), torch.optim.Adam, lr=1e-2)
    assert got[-1] < got[0]
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=2e-4, rtol=1e-3)
    report = rec.report()
    assert report.alloy_nodes > 60, report
    assert set(report.fallback_ops) <= AVX2_FALLBACKS, report.fallback_ops  # attention, cross-entropy, gradients


# the causal mask and the shifted labels of a Hugging Face training step: integer and boolean bookkeeping
MASK_OPS = INTEGER_OPS | {"aten.full.default", "aten.full_like.default", "aten.sub.Tensor", "aten.le.Scalar",
                          "aten.logical_and.default", "aten.any.dim", "aten.constant_pad_nd.default",
                          "aten.clone.default"}


def test_lora_finetuning_of_gpt2_runs_on_alloy():
    peft = pytest.importorskip("peft")
    from alloy_torch.training import set_training_mode

    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_config(CONFIGS["gpt2"]())
    model = peft.get_peft_model(base, peft.LoraConfig(target_modules=["c_attn"], task_type="CAUSAL_LM"))
    eager = copy.deepcopy(model)
    ids = torch.randint(0, 128, (2, 16))

    def seeded(run):  # GPT-2 trains with dropout: each step draws its masks from the same seed in both runs
        steps = itertools.count()
        return lambda m: (torch.manual_seed(next(steps)), run(m))[1]

    set_training_mode(True)
    try:
        compiled = torch.compile(model, backend="alloy")
        with Recorder() as rec, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = _train(model, seeded(lambda m: compiled(input_ids=ids, labels=ids).loss), torch.optim.AdamW,
                         steps=3, lr=5e-3)
    finally:
        set_training_mode(False)
    want = _train(eager, seeded(lambda m: m(input_ids=ids, labels=ids).loss), torch.optim.AdamW, steps=3, lr=5e-3)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), atol=1e-4, rtol=1e-4)
    report = rec.report()
    assert set(report.fallback_ops) <= MASK_OPS | AVX2_FALLBACKS, report.fallback_ops
    assert report.alloy_nodes > 200, report


@pytest.mark.parametrize("opt_cls,opt_kw", [(torch.optim.AdamW, {"lr": 1e-2}), (torch.optim.Adam, {"lr": 1e-2}),
                                            (torch.optim.SGD, {"lr": 1e-2, "momentum": 0.9}),
                                            (torch.optim.RMSprop, {"lr": 1e-3})])
def test_compiled_optimizer_step_runs_on_alloy(opt_cls, opt_kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))
    eager = copy.deepcopy(model)
    x, y = torch.randn(8, 16), torch.randn(8, 4)
    opt, eager_opt = opt_cls(model.parameters(), **opt_kw), opt_cls(eager.parameters(), **opt_kw)
    step = torch.compile(opt.step, backend="alloy")
    with Recorder() as rec, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5):
            opt.zero_grad()
            F.mse_loss(model(x), y).backward()
            step()
            eager_opt.zero_grad()
            F.mse_loss(eager(x), y).backward()
            eager_opt.step()
    for p, q in zip(model.parameters(), eager.parameters()):
        torch.testing.assert_close(p, q, atol=2e-6, rtol=1e-5)
    report = rec.report()
    assert report.fallback_nodes == 0 and report.alloy_nodes > 0, report.fallback_ops
