"""A small GroupNorm ResNet (conv stem, max pool, two residual blocks, global average pool, linear head)
compiled with backend="alloy": inference and one training step checked against eager, with no op left
to eager torch."""
import copy
import sys

import torch
import torch.nn as nn

import alloy_torch  # registers the "alloy" backend


class Block(nn.Module):
    """Two 3x3 convolutions with GroupNorm, and the residual (a strided 1x1 projection when it downsamples)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(4, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(4, cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.skip(x) + self.norm2(self.conv2(y)))


def resnet(classes: int = 10) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.GroupNorm(4, 16), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                         Block(16, 16, 1), Block(16, 32, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(32, classes))


def main() -> int:
    torch.manual_seed(0)
    model = resnet()
    x, labels = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, backend="alloy")
    with torch.no_grad():
        err = (compiled(x) - eager(x)).abs().max().item()
    loss = nn.functional.cross_entropy(compiled(x), labels)
    ref = nn.functional.cross_entropy(eager(x), labels)
    loss.backward()
    ref.backward()
    grad_err = max((p.grad - q.grad).abs().max().item() for p, q in zip(model.parameters(), eager.parameters()))
    report = alloy_torch.explain(resnet(), x, backward=True)
    ok = err < 1e-4 and abs(loss.item() - ref.item()) < 1e-5 and grad_err < 1e-4 and report.fallback_nodes == 0
    print(f"resnet: max |alloy - eager| = {err:.2e}, loss {loss.item():.6f} vs {ref.item():.6f}, "
          f"max gradient difference {grad_err:.2e}, {report.fallback_nodes} fallback nodes", "ok" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
