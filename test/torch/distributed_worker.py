"""One rank of test_torch_distributed: trains a small MLP through backend="alloy" under DDP or FSDP2 on the
gloo backend, each rank on its shard of one global batch, and checks the parameters against one eager
process trained on the whole batch. Run by torch.distributed.run: python -m torch.distributed.run
--nproc_per_node 2 distributed_worker.py ddp|fsdp."""
import copy
import sys
import warnings

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from torch_helpers import Recorder


def full(p: torch.Tensor) -> torch.Tensor:
    """A parameter's whole value (FSDP2 shards them as DTensors)."""
    return p.full_tensor() if hasattr(p, "full_tensor") else p


def main() -> int:
    warnings.simplefilter("ignore")
    mode = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.LayerNorm(64), nn.Linear(64, 8))
    reference = copy.deepcopy(model)
    if mode == "ddp":  # compile the module, then wrap it (DDP's own forward is not traced by Dynamo)
        wrapped = nn.parallel.DistributedDataParallel(torch.compile(model, backend="alloy"))
    else:
        from torch.distributed.fsdp import fully_shard

        wrapped = fully_shard(model)  # parameters sharded over the ranks, gathered around the forward
        # compile the forward itself: FSDP2's hooks around the module call stop Dynamo (they are
        # dynamo-disabled), a compiled forward runs between them on the gathered parameters
        wrapped.forward = torch.compile(wrapped.forward, backend="alloy")
    x, y = torch.randn(8 * world, 32), torch.randn(8 * world, 8)  # the same global batch on every rank
    opt = torch.optim.AdamW(wrapped.parameters(), lr=1e-2)
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=1e-2)
    with Recorder() as rec:
        for _ in range(5):
            opt.zero_grad()
            F.mse_loss(wrapped(x[rank::world]), y[rank::world]).backward()
            opt.step()
            ref_opt.zero_grad()
            F.mse_loss(reference(x), y).backward()  # equal shards: the mean over the batch is the ranks' mean
            ref_opt.step()
    worst = max((full(p.detach()) - q.detach()).abs().max().item()
                for p, q in zip(wrapped.parameters(), reference.parameters()))
    report = rec.report()
    ok = worst < 1e-4 and report.alloy_nodes > 0 and report.fallback_nodes == 0
    print(f"rank {rank} {mode}: largest parameter difference {worst:.2e}, alloy nodes {report.alloy_nodes}, "
          f"fallbacks {dict(report.fallback_ops)}: {'ok' if ok else 'MISMATCH'}", flush=True)
    dist.barrier()  # both ranks are done before either tears the group down
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
