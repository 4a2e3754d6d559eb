import random

import pytest

from inference_core.sampler import IsogenousSampler
from util.config import PRESETS, InferenceConfig


def sampler(threshold, fraction, anchors, seed):
    return IsogenousSampler(InferenceConfig(sample_threshold=threshold, sample_fraction=fraction, anchors=anchors,
                                            seed=seed))


def test_same_seed_same_frames():
    a, b = sampler(8, 0.5, (0, -2), seed=3), sampler(8, 0.5, (0, -2), seed=3)
    assert [a.select(n) for n in range(9, 40)] == [b.select(n) for n in range(9, 40)]
    c = sampler(8, 0.5, (0, -2), seed=4)
    assert [a.select(n) for n in range(9, 40)] != [c.select(n) for n in range(9, 40)]
    a.reset()
    b.reset()
    assert a.select(30) == b.select(30)


def test_draw_is_pythons_random_sample_as_the_reference():
    """Same seed, same frames as the reference's `random.sample` on the global stream."""
    drawing = sampler(threshold=10, fraction=0.6, anchors=(0, 1, -5, -4, -3, -2), seed=5)
    reference = random.Random(5)
    for n in range(11, 40):
        expected = sorted(reference.sample(range(n - 1), int(n * 0.6)))
        assert drawing.select(n) == [0, 1, n - 5, n - 4, n - 3, n - 2] + expected


def test_memory_at_or_below_threshold_is_read_whole_without_drawing():
    drawing = sampler(threshold=8, fraction=0.1, anchors=(0, -2), seed=0)
    fresh = sampler(threshold=8, fraction=0.1, anchors=(0, -2), seed=0)
    assert all(drawing.select(n) is None for n in range(0, 9))
    assert drawing.rng.getstate() == fresh.rng.getstate()
    assert drawing.select(9) == [0, 7]  # int(0.1 * 9) = 0 drawn, anchors only


def test_fraction_one_draws_all_but_the_newest():
    drawing = sampler(threshold=2, fraction=1.0, anchors=(0,), seed=0)
    assert drawing.select(6) == [0, 0, 1, 2, 3, 4]


def test_invalid_anchor_is_refused():
    with pytest.raises(ValueError, match="anchor -12"):
        sampler(threshold=8, fraction=0.1, anchors=(0, -12), seed=0)


def test_settings_are_the_configs():
    for config in PRESETS.values():
        drawing = IsogenousSampler(config.replace(seed=7))
        assert (drawing.threshold, drawing.fraction, drawing.anchors, drawing.seed) == \
            (config.sample_threshold, config.sample_fraction, config.anchors, 7)
