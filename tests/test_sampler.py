import pytest

from model.sampler import IsogenousSampler


def test_same_seed_same_frames():
    a, b = IsogenousSampler(8, 0.5, (0, -2), seed=3), IsogenousSampler(8, 0.5, (0, -2), seed=3)
    assert [a.select(n) for n in range(9, 40)] == [b.select(n) for n in range(9, 40)]
    c = IsogenousSampler(8, 0.5, (0, -2), seed=4)
    assert [a.select(n) for n in range(9, 40)] != [c.select(n) for n in range(9, 40)]
    a.reset()
    b.reset()
    assert a.select(30) == b.select(30)


def test_anchors_always_present_and_fraction_of_all_but_last():
    sampler = IsogenousSampler(threshold=10, fraction=0.6, anchors=(0, 1, -5, -4, -3, -2), seed=0)
    for n in range(11, 60):
        chosen = sampler.select(n)
        sampled, anchors = chosen[:-6], chosen[-6:]
        assert anchors == [0, 1, n - 5, n - 4, n - 3, n - 2]
        assert len(sampled) == int(0.6 * (n - 1)) and len(set(sampled)) == len(sampled)
        assert sampled == sorted(sampled) and all(0 <= i < n - 1 for i in sampled)


def test_memory_at_or_below_threshold_is_read_whole():
    sampler = IsogenousSampler(threshold=8, fraction=0.1, anchors=(0, -2), seed=0)
    assert all(sampler.select(n) is None for n in range(0, 9))
    assert sampler.select(9) == [0, 7]  # int(0.1 * 8) = 0 sampled, anchors only


def test_invalid_anchor_is_refused():
    with pytest.raises(ValueError, match="anchor -12"):
        IsogenousSampler(threshold=8, fraction=0.1, anchors=(0, -12))
