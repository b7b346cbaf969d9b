"""Helpers of the alloy_torch tests: compile with the alloy backend and count what ran where."""
import copy
import warnings

import torch

import alloy_torch  # noqa: F401  (registers the backend)
from alloy.std.flash_attention_backward import runs_on_this_cpu
from alloy_torch import backend

# on an AVX2-only CPU target the attention backward of heads whose size is not a power of two runs in eager
# torch (al.attention_backward's AVX2 code has an open miscompile there); elsewhere nothing may fall back
AVX2_FALLBACKS = set() if runs_on_this_cpu(24) else {"aten._scaled_dot_product_flash_attention_for_cpu_backward.default"}


class Recorder:
    """The plans compiled while it is active; `report()` sums their node counts."""

    def __enter__(self):
        self.session = backend.Session()
        backend._SESSIONS.append(self.session)
        return self

    def __exit__(self, *exc):
        backend._SESSIONS.remove(self.session)

    def report(self):
        return self.session.report()


def compiled_and_eager(module, *inputs, grad_out=True, **tolerances):
    """Run `module` compiled with alloy and eagerly on copies of `inputs`; compare outputs, and (with
    `grad_out`) input and parameter gradients for a random output gradient. Returns the report."""
    eager = copy.deepcopy(module)
    xs = [x.detach().clone().requires_grad_(x.is_floating_point() and grad_out) for x in inputs]
    rs = [x.detach().clone().requires_grad_(x.is_floating_point() and grad_out) for x in inputs]
    with Recorder() as rec, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.compile(module, backend="alloy")(*xs)
        ref = eager(*rs)
        torch.testing.assert_close(out, ref, **tolerances)
        if grad_out:
            g = torch.randn_like(ref)
            (out * g).sum().backward()
            (ref * g).sum().backward()
    if grad_out:
        for a, b in zip(xs, rs):
            if a.grad is not None or b.grad is not None:
                torch.testing.assert_close(a.grad, b.grad, **tolerances)
        for (name, p), q in zip(module.named_parameters(), eager.parameters()):
            torch.testing.assert_close(p.grad, q.grad, **tolerances, msg=lambda m: f"{name}.grad: {m}")
    return rec.report()
