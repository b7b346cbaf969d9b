"""One rank of the distributed tests (test_torch_distributed.py): a model compiled with backend="alloy"
under DDP on the gloo backend, trained a few steps; rank 0 writes its losses and
parameters for the test to compare with a single-process eager run."""
import datetime
import os
import sys
import warnings

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

import alloy_torch  # noqa: F401  (registers the backend)
from alloy_torch import backend


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))


def batches(steps=5):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 16, generator=g), torch.randn(8, 4, generator=g)) for _ in range(steps)]


def main(rank: int, world: int, port: str, out_path: str) -> None:
    warnings.simplefilter("ignore")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=120))
    session = backend.Session()
    backend._SESSIONS.append(session)
    inner = model()
    # DDP's own forward graph-breaks in Dynamo (its logger), so the module inside it is compiled
    step = nn.parallel.DistributedDataParallel(torch.compile(inner, backend="alloy"))
    opt = torch.optim.SGD(inner.parameters(), lr=0.1)
    for x, y in batches():
        half = x.shape[0] // world
        xs, ys = x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]
        opt.zero_grad()
        loss = F.mse_loss(step(xs), ys)
        loss.backward()
        opt.step()
    if rank == 0:
        report = session.report()
        torch.save({"params": [p.detach() for p in inner.parameters()], "alloy_nodes": report.alloy_nodes,
                    "fallback_nodes": report.fallback_nodes}, out_path)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
