"""Train IMSFR (stages 0-3), in one process or under DDP.

    python train.py --stage 3 --id s03 --load_network saves/s0_300000.pth
    torchrun --nproc_per_node=2 train.py --stage 3 --id s03 ...
    python -m torch.distributed.launch --nproc_per_node=2 train.py --stage 3 --id s03 ...

See docs/training.md and ``python train.py --help`` for the flags.
"""
import os
import sys

from dataset import DatasetError
from model.backbones import PretrainedWeightsUnavailable
from model.checkpoint import CheckpointError
from training.args import parse_train_args
from training.errors import TrainingError
from training.loop import run_training
from util.distributed import DistributedSetupError

EXPECTED_ERRORS = (TrainingError, DatasetError, CheckpointError, DistributedSetupError, PretrainedWeightsUnavailable)


def main(argv=None) -> int:
    """Run training; returns the exit status (0 done or stopped as asked, 1 bad
    input or a run stopped by unreadable data after saving a checkpoint, 2 an
    unwritable --save_dir / --log_dir, 128 + signal number when stopped by
    SIGINT/SIGTERM)."""
    args = parse_train_args(argv)
    world_size = os.environ.get("WORLD_SIZE", "1")
    prefix = f"[rank {os.environ.get('RANK', '0')}] " if world_size not in ("", "1") else ""
    try:
        result = run_training(args, local_rank=args.local_rank)
    except EXPECTED_ERRORS as error:
        print(f"{prefix}error: {error}", file=sys.stderr)
        return getattr(error, "exit_code", 1)
    except KeyboardInterrupt:
        print(f"{prefix}interrupted", file=sys.stderr)
        return 130
    return 128 + result.stopped_by_signal if result.stopped_by_signal else 0


if __name__ == "__main__":
    sys.exit(main())
