"""backend="alloy" under torch.distributed: DDP and FSDP2, two processes on the gloo backend (CPU), each
rank's parameters checked against one eager process trained on the whole batch (distributed_worker.py)."""
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_gloo_ranks_train_like_one_eager_process(mode):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "distributed_worker.py"), mode]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=HERE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
        out, err = proc.communicate()
        pytest.fail(f"{mode} did not finish in 300 s:\n{out[-3000:]}{err[-3000:]}")
    verdicts = dict(re.findall(r"rank (\d) \w+: .*?\}: (ok|MISMATCH)", out))
    assert proc.returncode == 0 and verdicts == {"0": "ok", "1": "ok"}, out[-3000:] + err[-3000:]
