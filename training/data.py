"""The training data of a run: the stage's data set with its distributed
sampler (:func:`build_training_data`), and the loader of this rank's batches
of each epoch (:func:`epoch_loader`, read through :func:`fetched_batches`).

Every random choice of the data comes from (seed, epoch, index)
(dataset/seeding.py), so the batches of an epoch do not depend on where the
run was resumed.
"""
import signal
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from dataset.robust import DataFailure, SkippingDataset, collate_skipping
from dataset.training_data import DEFAULT_ROOTS, build_stage_dataset, check_stage_data, data_options, max_jump_schedule
from training.errors import TrainingError


@dataclass
class TrainingData:
    dataset: torch.utils.data.Dataset
    vos_datasets: list
    schedule: str  # name of the max_jump schedule (util.config.MAX_JUMP_SCHEDULE), None for static data
    sampler: DistributedSampler
    batches_per_epoch: int


def build_training_data(args, context):
    """The stage's dataset with its distributed sampler. Raises DatasetError (clear
    messages) for missing or unusable data roots."""
    roots = {name: getattr(args, name) for name in DEFAULT_ROOTS}
    youtube = not (args.data == "main" and args.main_data == "davis")
    check_stage_data(args.stage, roots, youtube=youtube, **data_options(args))
    dataset, vos_datasets = build_stage_dataset(args.stage, roots, crop_size=args.crop_size, seed=args.seed,
                                                youtube=youtube, **data_options(args))
    sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank,
                                 shuffle=True, seed=args.seed)
    batches = len(sampler) // args.batch_size
    if batches == 0:
        raise TrainingError(f"the stage {args.stage} data has {len(dataset)} samples: too few for "
                            f"{context.world_size} process(es) x batch size {args.batch_size}")
    return TrainingData(dataset, vos_datasets, max_jump_schedule(args.stage), sampler, batches)


def _ignore_sigint(_worker_id):
    # Ctrl-C reaches every process of the terminal's group: the loader workers
    # keep going so the main process can stop cleanly and save.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def epoch_loader(data, epoch, skip, args, device):
    """A DataLoader over this rank's batches of ``epoch``, minus the first ``skip``."""
    data.sampler.set_epoch(epoch)
    data.dataset.set_epoch(epoch)
    indices = list(data.sampler)
    batches = [indices[i * args.batch_size:(i + 1) * args.batch_size] for i in range(data.batches_per_epoch)]
    return DataLoader(SkippingDataset(data.dataset), batch_sampler=batches[skip:], num_workers=args.num_workers,
                      pin_memory=device.type == "cuda", worker_init_fn=_ignore_sigint, collate_fn=collate_skipping)


def fetched_batches(loader):
    """(batch, None) for each batch of ``loader``, then (None, failure) and the end
    if a batch cannot be read: a :class:`DataFailure` (no readable sample), or the
    exception raised while fetching (a worker that died, a bug in the data code)."""
    try:
        iterator = iter(loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            if isinstance(batch, DataFailure):
                yield None, batch
                return
            yield batch, None
    except Exception as error:
        yield None, error


def to_device(batch, device):
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
