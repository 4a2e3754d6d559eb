"""Per-item random streams, so that a sample depends only on (seed, epoch, index).

Nothing here touches the global RNGs (``random``, ``numpy.random``, ``torch``):
a sample is the same in any DataLoader worker and in any call order, which
makes a resumed run read exactly the data the interrupted one would have read.
Epoch and max_jump are plain attributes copied into the workers when a
DataLoader iterator starts, so set them before iterating (and do not use
``persistent_workers=True``, which would keep stale copies).
"""
import bisect

import numpy as np
from torch.utils.data import ConcatDataset, Dataset


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """A numpy Generator seeded from (seed, epoch, index) through a SeedSequence."""
    keys = (seed, epoch, index)
    if any(int(k) != k or k < 0 for k in keys):
        raise ValueError(f"seed, epoch and index must be non-negative integers, got {keys}")
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


class SeededDataset(Dataset):
    """``__getitem__(i)`` draws all its randomness from (seed, epoch, i).

    Subclasses implement ``make_sample(index, rng)``; :class:`EpochConcatDataset`
    calls it with a stream keyed by the *global* index, so repeated copies of one
    dataset (DAVIS x5) give different samples.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        return self.make_sample(index, item_rng(self.seed, self.epoch, index))

    def make_sample(self, index: int, rng: np.random.Generator) -> dict:
        raise NotImplementedError


class EpochConcatDataset(ConcatDataset):
    """Concatenation of :class:`SeededDataset` parts seeded by the global index.

    The parts' own seeds are not used: item ``i`` of the concatenation draws from
    (seed, epoch, i), so a part listed several times yields different samples
    in each copy, and two parts never share a stream.
    """

    def __init__(self, datasets, seed: int):
        super().__init__(datasets)
        for part in self.datasets:
            if not isinstance(part, SeededDataset):
                raise TypeError(f"EpochConcatDataset needs SeededDataset parts, got {type(part).__name__}")
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = int(epoch)
        for part in self.datasets:
            part.set_epoch(epoch)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        part = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[part - 1] if part else 0
        rng = item_rng(self.seed, self.epoch, index)
        return self.datasets[part].make_sample(index - start, rng)
