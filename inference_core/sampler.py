"""Isogenous memory sampling: which long-term memory frames a query reads.

With T memory frames and T > ``threshold``, the long-term readout reads
``int(fraction * T)`` distinct frames drawn uniformly from the T - 1 oldest
(the newest frame enters through the previous-frame readout anyway) plus
fixed anchor frames; with T <= ``threshold`` it reads every frame. This is
the reference's rule; ``util/config.py`` holds each benchmark's numbers (``PRESETS``).

The random stream belongs to the sampler and is seeded. It is Python's
``random.Random``, drawn with ``sample`` exactly as the reference draws from
the global ``random`` module, so for the same seed both read the same frames.
"""
import random

from util.config import check_sampler


class IsogenousSampler:
    def __init__(self, threshold: int = 8, fraction: float = 0.1, anchors=(0, -2), seed=None):
        anchors = tuple(int(a) for a in anchors)
        check_sampler(threshold, fraction, anchors)
        self.threshold = threshold
        self.fraction = fraction
        self.anchors = anchors
        self.seed = seed
        self.rng = random.Random(seed)

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

    @classmethod
    def from_config(cls, config):
        """The sampler of an ``InferenceConfig``, seeded with its seed."""
        return cls(config.sample_threshold, config.sample_fraction, config.anchors, config.seed)

    def __repr__(self):
        return (f"IsogenousSampler(threshold={self.threshold}, fraction={self.fraction}, "
                f"anchors={self.anchors}, seed={self.seed})")
