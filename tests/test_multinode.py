"""train.py beyond one machine: two torchrun "nodes" (one process each, c10d rendezvous, gloo
on CPU) on this machine end with the same weights as 2 processes on one node."""
import sys
from concurrent.futures import ThreadPoolExecutor

import torch

from tests.helpers_train import free_port, run, stage3_args

TRAIN = ["--iterations", "3", "--crop_size", "32"]  # 2 ranks x 2 batches per epoch: iteration 3 is in epoch 1


def torchrun(*flags):
    return [sys.executable, "-m", "torch.distributed.run", *flags]


def test_two_nodes_end_with_the_weights_of_one_node(davis_root, tmp_path):
    # Both nodes run the same command; the one that binds the endpoint hosts the rendezvous
    # store (on two machines: the machine the endpoint names), the other joins it.
    node = torchrun("--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
                    f"--rdzv_endpoint=127.0.0.1:{free_port()}", "--rdzv_id=multinode",
                    "train.py", *stage3_args(davis_root, tmp_path, "nodes", *TRAIN))
    with ThreadPoolExecutor(2) as pool:
        nodes = list(pool.map(run, [node, node]))
    for result in nodes:
        assert result.returncode == 0, result.stdout + result.stderr
    assert "2 process(es) on cpu" in "".join(r.stdout for r in nodes)

    single = run(torchrun("--standalone", "--nproc_per_node=2",
                          "train.py", *stage3_args(davis_root, tmp_path, "single", *TRAIN)))
    assert single.returncode == 0, single.stdout + single.stderr

    saves = tmp_path / "saves"
    across = torch.load(saves / "nodes_3.pth", map_location="cpu", weights_only=True)
    within = torch.load(saves / "single_3.pth", map_location="cpu", weights_only=True)
    assert across.keys() == within.keys()
    assert [name for name, tensor in within.items() if not torch.equal(across[name], tensor)] == []
