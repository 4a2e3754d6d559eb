"""Isogenous memory sampling: which long-term memory frames a query reads.

With T memory frames and T > ``threshold``, the long-term readout reads
``int(fraction * T)`` distinct frames drawn uniformly from the T - 1 oldest
(the newest frame enters through the previous-frame readout anyway) plus
fixed anchor frames; with T <= ``threshold`` it reads every frame. This is
the reference's rule. Its settings are an ``InferenceConfig``'s (util/config.py, where
``PRESETS`` holds each benchmark's numbers).

The random stream belongs to the sampler and is seeded. It is Python's
``random.Random``, drawn with ``sample`` exactly as the reference draws from
the global ``random`` module, so for the same seed both read the same frames.
"""
import random

from util.config import InferenceConfig


class IsogenousSampler:
    def __init__(self, config: InferenceConfig):
        """The sampler of an ``InferenceConfig`` (validated there): its ``sample_threshold``,
        ``sample_fraction`` and ``anchors``, seeded with its ``seed``."""
        self.threshold = config.sample_threshold
        self.fraction = config.sample_fraction
        self.anchors = config.anchors
        self.seed = config.seed
        self.rng = random.Random(self.seed)

    def reset(self, seed=None):
        """Restart the random stream (from ``seed`` or the constructor's seed)."""
        self.rng = random.Random(self.seed if seed is None else seed)

    def num_drawn(self, num_frames: int) -> int:
        """int(fraction * T), as the reference; at most the T - 1 frames there are
        to draw from (the reference fails for fraction 1)."""
        return min(int(num_frames * self.fraction), num_frames - 1)

    def select(self, num_frames: int):
        """Indices of the memory frames to read, or ``None`` to read them all
        (no random number is consumed then).

        As in the reference the result is [anchors..., drawn frames sorted]; an
        anchor that was also drawn is read twice, which doubles its weight in
        the softmax. The order only matters for ties in the top-k readout.
        """
        if num_frames <= self.threshold:
            return None
        drawn = sorted(self.rng.sample(range(num_frames - 1), self.num_drawn(num_frames)))
        return [a % num_frames for a in self.anchors] + drawn

    def __repr__(self):
        return (f"IsogenousSampler(threshold={self.threshold}, fraction={self.fraction}, "
                f"anchors={self.anchors}, seed={self.seed})")
