"""A pre-norm transformer block (SDPA attention, GELU MLP) compiled with backend="alloy", against eager."""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

import alloy_torch  # noqa: F401  (registers the "alloy" backend)


class Block(nn.Module):
    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


def main() -> int:
    torch.manual_seed(0)
    block = Block().eval()
    x = torch.randn(2, 32, 64)
    with torch.no_grad():
        out = torch.compile(block, backend="alloy")(x)
        ref = block(x)
    err = (out - ref).abs().max().item()
    ok = err < 1e-4
    print(f"transformer block: max |alloy - eager| = {err:.2e}", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
