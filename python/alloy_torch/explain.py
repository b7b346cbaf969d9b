"""`alloy_torch.explain(model, *inputs)`: which nodes of the compiled graphs ran on Alloy kernels."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import backend


@dataclass
class Explanation:
    alloy_nodes: int
    view_nodes: int
    fallback_nodes: int
    fallback_ops: dict  # ATen op name -> node count
    kernels: int  # Alloy kernel launches per call, over all graphs
    graphs: int
    pattern_fusions: dict = field(default_factory=dict)  # pattern -> subgraphs one builtin computed
    @property
    def fallback_fraction(self) -> float:
        computed = self.alloy_nodes + self.fallback_nodes
        return self.fallback_nodes / computed if computed else 0.0

    def table(self) -> str:
        rows = [("graphs", self.graphs), ("alloy nodes", self.alloy_nodes), ("alloy kernels", self.kernels),
                ("view nodes", self.view_nodes), ("fallback nodes", self.fallback_nodes)]
        rows += [(f"  fallback {op}", n) for op, n in sorted(self.fallback_ops.items())]
        rows += [(f"pattern: {name}", n) for name, n in sorted(self.pattern_fusions.items())]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def explain(model, *inputs, backward: bool = False, **kwargs) -> Explanation:
    """Compile `model` with the alloy backend, run it once on `inputs` (and its backward when `backward`),
    print a table and return the counts."""
    session = backend.Session()
    backend._SESSIONS.append(session)
    try:
        torch._dynamo.reset()
        compiled = torch.compile(model, backend="alloy")
        out = compiled(*inputs, **kwargs)
        if backward:
            loss = out.float().sum() if isinstance(out, torch.Tensor) else sum(o.float().sum() for o in out)
            loss.backward()
    finally:
        backend._SESSIONS.remove(session)
    report = session.report()
    result = Explanation(report.alloy_nodes, report.view_nodes, report.fallback_nodes, dict(report.fallback_ops),
                         report.kernels, len(session.plans), dict(report.pattern_fusions))
    print(result.table())
    return result
