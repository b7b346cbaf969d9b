"""The spec's MLP (Linear / LayerNorm / GELU) compiled with backend="alloy", checked against eager."""
import sys

import torch
import torch.nn as nn

import alloy_torch  # registers the "alloy" backend


def main() -> int:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.LayerNorm(128), nn.GELU(), nn.Linear(128, 32)).eval()
    x = torch.randn(32, 64)
    compiled = torch.compile(model, backend="alloy")
    with torch.no_grad():
        out, ref = compiled(x), model(x)
    err = (out - ref).abs().max().item()
    report = alloy_torch.explain(model, x)
    ok = err < 1e-4 and report.fallback_nodes == 0
    print(f"mlp: max |alloy - eager| = {err:.2e}", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
