"""Isogenous memory sampling: which long-term memory frames a query reads.

When the memory holds more than ``threshold`` frames, the long-term readout
reads a uniformly random ``fraction`` of the memory frames (drawn from all but
the last one) plus fixed anchor frames; otherwise it reads every frame. The
random stream is owned by the sampler and seeded, so runs are reproducible.
"""
import random


class IsogenousSampler:
    def __init__(self, threshold: int = 8, fraction: float = 0.1, anchors=(0, -2), seed=None):
        if threshold < 0:
            raise ValueError("threshold must be >= 0")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must lie in [0, 1]")
        anchors = tuple(int(a) for a in anchors)
        # Anchors must exist as soon as sampling starts (memory of threshold + 1 frames).
        for a in anchors:
            if not -(threshold + 1) <= a <= threshold:
                raise ValueError(f"anchor {a} does not exist in a memory of {threshold + 1} frames")
        self.threshold = threshold
        self.fraction = fraction
        self.anchors = anchors
        self.seed = seed
        self.rng = random.Random(seed)

    def reset(self, seed=None):
        """Restart the random stream (from ``seed`` or the constructor's seed)."""
        self.rng = random.Random(self.seed if seed is None else seed)

    def num_sampled(self, num_frames: int) -> int:
        return int(self.fraction * (num_frames - 1))

    def select(self, num_frames: int):
        """Indices of the memory frames to read, or ``None`` to read them all.

        As in the reference, the sampled indices are sorted and the anchors are
        appended without removing duplicates: an anchor that was also sampled
        is read twice, which doubles its weight in the softmax.
        """
        if num_frames <= self.threshold:
            return None
        sampled = sorted(self.rng.sample(range(num_frames - 1), self.num_sampled(num_frames)))
        return sampled + [a % num_frames for a in self.anchors]

    def __repr__(self):
        return (f"IsogenousSampler(threshold={self.threshold}, fraction={self.fraction}, "
                f"anchors={self.anchors}, seed={self.seed})")
