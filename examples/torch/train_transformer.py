"""A pre-norm transformer block (causal SDPA, GELU MLP, dropout) with a classification head, trained 20 steps
with SGD and cross-entropy through backend="alloy"; the losses must track an eager copy's. Every forward
and backward node runs on Alloy kernels (checked with alloy_torch.explain)."""
import copy
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import alloy_torch
from alloy_torch.training import set_training_mode


class Classifier(nn.Module):
    def __init__(self, dim=64, heads=4, classes=10):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Dropout(0.1), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, classes)

    def forward(self, x, labels):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        x = x + self.mlp(self.ln2(x))
        return F.cross_entropy(self.head(x.mean(1)), labels)


def main() -> int:
    set_training_mode(True)  # before torch.compile
    torch.manual_seed(0)
    model = Classifier()
    eager = copy.deepcopy(model)
    x, labels = torch.randn(16, 12, 64), torch.randint(0, 10, (16,))
    report = alloy_torch.explain(model, x, labels, backward=True)
    step = torch.compile(model, backend="alloy")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    eager_opt = torch.optim.SGD(eager.parameters(), lr=0.1, momentum=0.9)
    worst, first = 0.0, None
    for i in range(20):
        opt.zero_grad()
        torch.manual_seed(i)  # the same dropout masks on both sides
        loss = step(x, labels)
        loss.backward()
        opt.step()
        eager_opt.zero_grad()
        torch.manual_seed(i)
        ref = eager(x, labels)
        ref.backward()
        eager_opt.step()
        worst = max(worst, abs(loss.item() - ref.item()) / ref.item())
        first = loss.item() if first is None else first
        if i % 5 == 0 or i == 19:
            print(f"step {i:2d}  alloy {loss.item():.5f}  eager {ref.item():.5f}")
    ok = worst < 1e-3 and loss.item() < first and report.fallback_nodes == 0
    print("train_transformer:", "ok" if ok else f"MISMATCH (relative loss gap {worst:.2e}, fallbacks "
          f"{dict(report.fallback_ops)})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
