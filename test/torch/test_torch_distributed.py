"""alloy_torch under torch.distributed: DDP over two gloo processes on the CPU, against one eager
process on the whole batch (DDP averages the two halves' gradients, so the parameters agree)."""
import pathlib
import socket
import subprocess
import sys

import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import distributed_worker  # noqa: E402


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_ddp_two_processes_match_single_process_eager(tmp_path):
    out = tmp_path / "rank0.pt"
    port = _free_port()
    logs = [tmp_path / f"rank{r}.log" for r in range(2)]  # files, not pipes: a full pipe would stall a rank
    files = [log.open("w") for log in logs]
    procs = [subprocess.Popen([sys.executable, str(HERE / "distributed_worker.py"), str(r), "2", port, str(out)],
                              stdout=f, stderr=subprocess.STDOUT) for r, f in enumerate(files)]
    errors = []
    try:
        for p, log in zip(procs, logs):
            p.wait(timeout=240)
            if p.returncode:
                errors.append(log.read_text()[-3000:])
    finally:
        for p in procs:  # a rank that failed leaves the other waiting at a collective
            if p.poll() is None:
                p.kill()
        for f in files:
            f.close()
    assert not errors, errors
    saved = torch.load(out)
    assert saved["alloy_nodes"] >= 6 and saved["fallback_nodes"] == 0, saved  # forward and backward on Alloy
    got = saved["params"]
    net = distributed_worker.model()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for x, y in distributed_worker.batches():
        opt.zero_grad()
        F.mse_loss(net(x), y).backward()
        opt.step()
    for a, b in zip(got, net.parameters()):
        torch.testing.assert_close(a, b.detach(), atol=1e-5, rtol=1e-4)
