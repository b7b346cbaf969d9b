"""A tiny language model (embedding, causal attention, GELU MLP, cross-entropy) trained through
backend="alloy"; the losses must track eager's."""
import copy
import sys
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

import alloy_torch  # noqa: F401  (registers the "alloy" backend)
from alloy_torch.training import set_training_mode


class TinyLM(nn.Module):
    def __init__(self, vocab=128, dim=64, heads=4):
        super().__init__()
        self.heads = heads
        self.emb = nn.Embedding(vocab, dim)
        self.ln1, self.ln2, self.ln_f = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids, labels):
        b, t = ids.shape
        h = self.emb(ids)
        q, k, v = self.qkv(self.ln1(h)).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.proj(a.transpose(1, 2).reshape(b, t, -1))
        h = h + self.mlp(self.ln2(h))
        logits = self.head(self.ln_f(h))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def main() -> int:
    warnings.simplefilter("ignore")  # the integer label bookkeeping of cross-entropy runs eagerly
    set_training_mode(True)
    torch.manual_seed(0)
    model = TinyLM()
    eager = copy.deepcopy(model)
    text = torch.randint(0, 128, (8, 33))
    ids, labels = text[:, :-1], text[:, 1:]
    step = torch.compile(model, backend="alloy")
    opt, eager_opt = torch.optim.Adam(model.parameters(), lr=3e-3), torch.optim.Adam(eager.parameters(), lr=3e-3)
    worst = 0.0
    for i in range(20):
        opt.zero_grad()
        loss = step(ids, labels)
        loss.backward()
        opt.step()
        eager_opt.zero_grad()
        ref = eager(ids, labels)
        ref.backward()
        eager_opt.step()
        worst = max(worst, abs(loss.item() - ref.item()) / ref.item())
        if i % 5 == 0 or i == 19:
            print(f"step {i:2d}  alloy {loss.item():.5f}  eager {ref.item():.5f}")
    ok = worst < 1e-3 and loss.item() < 4.8
    print("train_lm:", "ok" if ok else f"MISMATCH (relative loss gap {worst:.2e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
