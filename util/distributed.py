"""Process-group setup for the three ways training is launched.

* ``python train.py ...``: one process, no process group.
* ``torchrun --nproc_per_node=N train.py ...``: LOCAL_RANK, RANK, WORLD_SIZE in
  the environment; the launcher's agent hosts the rendezvous store.
* ``python -m torch.distributed.launch --nproc_per_node=N train.py ...``: the
  same environment, plus ``--local-rank=N`` (PyTorch 2.x) or ``--local_rank=N``
  (older) on the command line; ``training.args`` accepts both.

NCCL on CUDA, gloo on CPU.
"""
import datetime
import os
import socket
from dataclasses import dataclass

import torch
import torch.distributed as dist

from util.device import pick_device


class DistributedSetupError(RuntimeError):
    """The process group cannot be set up; the message says why."""


@dataclass
class DistContext:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise DistributedSetupError(f"environment variable {name}={value!r} is not an integer") from None


def launch_environment(local_rank_arg=None):
    """(rank, local_rank, world_size) from the launcher's environment.
    ``local_rank_arg`` is the ``--local-rank`` value torch.distributed.launch passes."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", local_rank_arg if local_rank_arg is not None else 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise DistributedSetupError(f"inconsistent launch environment: RANK={rank}, WORLD_SIZE={world_size}")
    if world_size > 1 and ("MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ):
        raise DistributedSetupError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set; "
                                    "launch with torchrun or torch.distributed.launch")
    return rank, local_rank, world_size


def port_is_free(port: int, host: str = "") -> bool:
    """True if ``host``:``port`` (IPv4, or IPv6 for a host with a colon) can be bound now by a server that,
    like uvicorn's and c10d's, sets SO_REUSEADDR (so a port whose last connections linger in TIME_WAIT is free)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _agent_hosts_store() -> bool:
    # torchrun / torch.distributed.launch (2.x) bind MASTER_PORT in their agent
    # before starting the workers; the workers only connect to it.
    return os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"


def init_distributed(device_name=None, local_rank_arg=None, timeout_minutes=30) -> DistContext:
    """Pick this process's device and, in a multi-process launch, join the process group."""
    rank, local_rank, world_size = launch_environment(local_rank_arg)
    try:
        device = pick_device(device_name)
    except RuntimeError as error:
        raise DistributedSetupError(str(error)) from None
    if device.type == "cuda":
        if world_size > 1 or device.index is None:
            device = torch.device("cuda", local_rank if world_size > 1 else 0)
        if device.index >= torch.cuda.device_count():
            raise DistributedSetupError(f"process {rank} needs GPU {device.index} but only "
                                        f"{torch.cuda.device_count()} are visible")
        torch.cuda.set_device(device)
    context = DistContext(rank, local_rank, world_size, device)
    if world_size == 1:
        return context

    port = os.environ["MASTER_PORT"]
    if rank == 0 and not _agent_hosts_store() and not port_is_free(int(port)):
        raise DistributedSetupError(f"MASTER_PORT {port} is already in use; choose another port")
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    except Exception as error:  # DistNetworkError, RuntimeError, ValueError from the store
        text = str(error)
        if "address already in use" in text.lower() or "eaddrinuse" in text.lower():
            raise DistributedSetupError(f"MASTER_PORT {port} is already in use; choose another port") from None
        reason = text.splitlines()[0] if text else type(error).__name__
        raise DistributedSetupError(f"could not join the process group ({backend}, "
                                    f"{os.environ['MASTER_ADDR']}:{port}): {reason}") from None
    return context


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks in place (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier():
    """Wait for every rank (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def any_ranks(flags, device) -> list:
    """For each flag, True on every rank if it is true on any rank (all ranks must call it)."""
    values = torch.tensor([1.0 if flag else 0.0 for flag in flags], device=device)
    return [bool(v > 0) for v in all_reduce_sum(values).tolist()]


def gather_objects(obj):
    """A list of ``obj`` from every rank (all ranks must call it)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered
