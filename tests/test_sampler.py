import random

import pytest

from inference_core.sampler import IsogenousSampler


def test_same_seed_same_frames():
    a, b = IsogenousSampler(8, 0.5, (0, -2), seed=3), IsogenousSampler(8, 0.5, (0, -2), seed=3)
    assert [a.select(n) for n in range(9, 40)] == [b.select(n) for n in range(9, 40)]
    c = IsogenousSampler(8, 0.5, (0, -2), seed=4)
    assert [a.select(n) for n in range(9, 40)] != [c.select(n) for n in range(9, 40)]
    a.reset()
    b.reset()
    assert a.select(30) == b.select(30)


def test_draw_is_pythons_random_sample_as_the_reference():
    """Same seed, same frames as the reference's `random.sample` on the global stream."""
    sampler = IsogenousSampler(threshold=10, fraction=0.6, anchors=(0, 1, -5, -4, -3, -2), seed=5)
    reference = random.Random(5)
    for n in range(11, 40):
        expected = sorted(reference.sample(range(n - 1), int(n * 0.6)))
        assert sampler.select(n) == [0, 1, n - 5, n - 4, n - 3, n - 2] + expected


def test_memory_at_or_below_threshold_is_read_whole_without_drawing():
    sampler = IsogenousSampler(threshold=8, fraction=0.1, anchors=(0, -2), seed=0)
    fresh = IsogenousSampler(threshold=8, fraction=0.1, anchors=(0, -2), seed=0)
    assert all(sampler.select(n) is None for n in range(0, 9))
    assert sampler.rng.getstate() == fresh.rng.getstate()
    assert sampler.select(9) == [0, 7]  # int(0.1 * 9) = 0 drawn, anchors only


def test_fraction_one_draws_all_but_the_newest():
    sampler = IsogenousSampler(threshold=2, fraction=1.0, anchors=(0,), seed=0)
    assert sampler.select(6) == [0, 0, 1, 2, 3, 4]


def test_invalid_anchor_is_refused():
    with pytest.raises(ValueError, match="anchor -12"):
        IsogenousSampler(threshold=8, fraction=0.1, anchors=(0, -12))
