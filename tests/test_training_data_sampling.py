"""The 3-frame sampling law of stages 1-3 against the reference's law, written out
here independently (NOTES.md "VOS sampling") and enumerated exactly."""
import math
import os
from fractions import Fraction
from itertools import product
from statistics import NormalDist

import numpy as np
import pytest
from PIL import Image

from dataset.vos_dataset import VOSDataset
from tests.helpers_stats import chi2_cdf, chi2_quantile
from util.palette import save_palette_png

DRAWS = 20_000
ALPHA = 0.001  # significance level of the chi-square tests


def exact_law(n, max_jump):
    """{ordered triple as used (after reversal): probability} of the reference's law:
    start uniform in 0..n-j, two steps of 1 + uniform(0..j) clipped at n-j and
    n - j//2 (and n-1), j = min(n, max_jump), then reversed with probability 1/2."""
    j = min(n, max_jump)
    weight = Fraction(1, (n - j + 1) * (j + 1) * (j + 1) * 2)
    law = {}
    for start, step1, step2, reverse in product(range(n - j + 1), range(j + 1), range(j + 1), (False, True)):
        first = min(start + 1 + step1, n - j, n - 1)
        second = min(first + 1 + step2, n - j // 2, n - 1)
        triple = (second, first, start) if reverse else (start, first, second)
        law[triple] = law.get(triple, 0) + weight
    return law


def chi_square(draws, law):
    """Pearson's statistic of the draws against the law; inf if any draw is impossible."""
    counts = {}
    for triple in draws:
        counts[triple] = counts.get(triple, 0) + 1
    if set(counts) - set(law):
        return float("inf")
    total = len(draws)
    return sum((counts.get(t, 0) - total * float(p)) ** 2 / (total * float(p)) for t, p in law.items())


def critical_value(df):
    """The chi-square critical value at ALPHA for ``df`` degrees of freedom (no scipy needed)."""
    return chi2_quantile(1 - ALPHA, df)


# (q, df, chi-square q-quantile) from scipy.stats.chi2.ppf (scipy 1.17.1), agreeing with
# published tables to their digits (e.g. 6.635, 23.209, 29.588, 149.449).
REFERENCE_QUANTILES = [
    (0.99, 1, 6.6348966010212145), (0.99, 10, 23.209251158954356), (0.99, 259, 314.8680061069365),
    (0.999, 10, 29.58829844507442), (0.999, 100, 149.44925277903886), (0.999, 219, 289.408351583794),
    (0.999, 259, 335.064754647592), (0.999, 1000, 1143.9170926196791),
    (0.5, 1, 0.454936423119572), (0.001, 5, 0.2102126026292192),
]


@pytest.mark.parametrize("q, df, expected", REFERENCE_QUANTILES)
def test_chi_square_quantile_matches_reference_values(q, df, expected):
    assert chi2_quantile(q, df) == pytest.approx(expected, rel=1e-10)
    assert chi2_cdf(expected, df) == pytest.approx(q, rel=1e-10)


@pytest.mark.parametrize("q", [0.001, 0.5, 0.99, 0.999, 0.999999])
def test_chi_square_quantile_matches_closed_forms(q):
    # df = 2 is the exponential law of mean 2; df = 1 is the square of a standard normal.
    assert chi2_quantile(q, 2) == pytest.approx(-2 * math.log(1 - q), rel=1e-10)
    assert chi2_quantile(q, 1) == pytest.approx(NormalDist().inv_cdf((1 + q) / 2) ** 2, rel=1e-9)


@pytest.fixture
def dataset_factory(tmp_path):
    root = tmp_path / "vos"
    labels = np.zeros((16, 16), np.uint8)
    labels[4:12, 4:12] = 1
    for t in range(12):
        os.makedirs(root / "JPEGImages" / "v", exist_ok=True)
        Image.fromarray(np.repeat(labels[..., None] * 255, 3, axis=2)).save(root / "JPEGImages" / "v" / f"{t:05d}.jpg")
        save_palette_png(str(root / "Annotations" / "v" / f"{t:05d}.png"), labels)

    def make(**kwargs):
        return VOSDataset(root / "JPEGImages", root / "Annotations", crop_size=16, **kwargs)
    return make


def test_exact_law_on_12_frames_with_max_jump_5():
    law = exact_law(12, 5)
    assert sum(law.values()) == 1 and len(law) == 260
    # Clipping at n - j = 7 repeats frame 7 whenever start = 7: probability 1/8.
    assert sum(p for t, p in law.items() if len(set(t)) < 3) == Fraction(1, 8)
    assert all(11 not in t for t in law)                       # the last frame is never drawn
    assert max(max(t) for t in law) == 10                      # n - j//2 = 10
    assert law[(0, 1, 2)] == law[(2, 1, 0)] == Fraction(1, 8 * 36 * 2)
    assert law[(7, 7, 10)] == Fraction(1, 8) * Fraction(4, 6) / 2  # start 7, second step clipped 4 times out of 6
    # Short video (n <= max_jump): j = n, every triple repeats its first frame.
    short = exact_law(4, 25)
    assert set(short) == {(0, 0, 1), (1, 0, 0), (0, 0, 2), (2, 0, 0)}
    assert short[(0, 0, 1)] == short[(1, 0, 0)] == Fraction(1, 10)


def test_reference_sampling_matches_the_law(dataset_factory):
    dataset = dataset_factory(max_jump=5)
    assert dataset.frame_sampling == "reference"  # the default
    rng = np.random.default_rng(0)
    draws = [tuple(dataset.pick_frames(12, rng)) for _ in range(DRAWS)]
    law = exact_law(12, 5)
    statistic = chi_square(draws, law)
    assert statistic < critical_value(len(law) - 1), statistic
    assert abs(sum(len(set(t)) < 3 for t in draws) / DRAWS - 0.125) < 0.01
    assert not any(11 in t for t in draws)


def test_uniform_sampling_fails_the_same_test(dataset_factory):
    dataset = dataset_factory(max_jump=5, frame_sampling="uniform")
    rng = np.random.default_rng(0)
    draws = [tuple(dataset.pick_frames(12, rng)) for _ in range(DRAWS)]
    assert chi_square(draws, exact_law(12, 5)) > critical_value(259)
    assert all(len(set(t)) == 3 for t in draws) and any(11 in t for t in draws)
    # Restricted to the triples both laws can give, the frequencies still disagree.
    law = exact_law(12, 5)
    common = [t for t in draws if t in law]
    mass = sum(law[t] for t in set(common))
    restricted = {t: p / mass for t, p in law.items() if t in set(common)}
    assert chi_square(common, restricted) > critical_value(len(restricted) - 1)


def test_samples_record_frames_as_drawn(dataset_factory):
    dataset = dataset_factory(max_jump=5)
    law = exact_law(12, 5)
    for epoch in range(10):
        dataset.set_epoch(epoch)
        info = dataset[0]["info"]
        assert tuple(info["frames"]) in law and info["num_frames"] == 12 and info["max_jump"] == 5
        assert info["frame_names"] == [f"{i:05d}.jpg" for i in info["frames"]]
    dataset.set_max_jump(25)  # longer than the video: j = 12, start 0, frame 0 repeated
    short_law = exact_law(12, 25)
    rng = np.random.default_rng(1)
    assert all(tuple(dataset.pick_frames(12, rng)) in short_law for _ in range(200))


def test_bad_sampling_settings_are_refused(dataset_factory):
    with pytest.raises(ValueError, match="frame_sampling must be one of reference, uniform, got 'odd'"):
        dataset_factory(max_jump=5, frame_sampling="odd")
    with pytest.raises(ValueError, match="reference frame sampling draws 3 frames, not 4"):
        dataset_factory(max_jump=5, num_frames=4)
    assert dataset_factory(max_jump=5, num_frames=4, frame_sampling="uniform").num_frames == 4
