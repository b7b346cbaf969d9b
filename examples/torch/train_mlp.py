"""The spec's training loop: an MLP trained 20 steps with AdamW through backend="alloy"; the losses must
track an eager copy of the same model."""
import copy
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import alloy_torch  # noqa: F401  (registers the "alloy" backend)
from alloy_torch.training import set_training_mode


def main() -> int:
    set_training_mode(True)  # before torch.compile
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 1))
    eager = copy.deepcopy(model)
    step = torch.compile(model, backend="alloy")
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    eager_opt = torch.optim.AdamW(eager.parameters(), lr=0.05)
    x, y = torch.randn(32, 64), torch.randn(32, 1)
    worst = 0.0
    for i in range(20):
        opt.zero_grad()
        loss = F.mse_loss(step(x), y)
        loss.backward()
        opt.step()
        eager_opt.zero_grad()
        ref = F.mse_loss(eager(x), y)
        ref.backward()
        eager_opt.step()
        worst = max(worst, abs(loss.item() - ref.item()) / max(abs(ref.item()), 1e-6))
        if i % 5 == 0 or i == 19:
            print(f"step {i:2d}  alloy {loss.item():.6f}  eager {ref.item():.6f}")
    ok = worst < 1e-3
    print("train_mlp:", "ok" if ok else f"MISMATCH (relative loss gap {worst:.2e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
