"""Click to mask without weights (interactive/tools.py's click_mask) and the click simulation (next_click)."""
import numpy as np
import pytest
import cv2

from interactive.tools import click_mask, next_click

H, W = 120, 160
SQUARE = (slice(30, 80), slice(50, 100))  # rows, columns: 50 x 50, centre (x 74.5, y 54.5)


def background(seed=0):
    """Smooth coloured noise plus fine grain (muted, like dataset/synthetic.py's), uint8 RGB (H, W, 3)."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.random((4, 6, 3)), (W, H), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 0.04, (H, W, 3))
    grey = 0.35 + 0.3 * coarse.mean(axis=2, keepdims=True)
    return np.clip(255 * (0.6 * grey + 0.4 * (0.2 + 0.5 * coarse) + grain), 0, 255).astype(np.uint8)


def stripes(colour, shape, period=8.0):
    """A texture of ``colour`` and a darker shade of it in diagonal stripes."""
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    weight = (0.5 + 0.5 * np.sin(2 * np.pi * (xs + ys) / period))[..., None]
    colour = np.asarray(colour, np.float64)
    return (weight * colour + (1 - weight) * 0.6 * colour).astype(np.uint8)


def square_scene():
    image, truth = background(), np.zeros((H, W), bool)
    image[SQUARE] = stripes((220, 40, 40), image[SQUARE].shape[:2])
    truth[SQUARE] = True
    return image, truth


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_one_click_in_the_middle_selects_the_square():
    image, truth = square_scene()
    mask = click_mask(image, [(75, 55, True)])
    assert mask.dtype == bool and mask.shape == (H, W)
    assert iou(mask, truth) >= 0.8


def test_a_negative_click_removes_a_wrongly_included_region():
    # The object is the striped square; a flat bar of its own bright colour touches its right side, so the
    # first click's colour model takes the bar in too. A negative click on the bar must take it out.
    image, truth = square_scene()
    bar = (slice(30, 80), slice(100, 125))
    image[bar] = (220, 40, 40)
    bar_mask = np.zeros((H, W), bool)
    bar_mask[bar] = True
    first = click_mask(image, [(75, 55, True)])
    assert (first & bar_mask).mean() / bar_mask.mean() > 0.5, "the case needs the bar wrongly included"
    negative = (112, 55)
    second = click_mask(image, [(75, 55, True), (*negative, False)])
    assert not second[negative[1], negative[0]]
    assert (second & bar_mask).sum() < 0.2 * bar_mask.sum()
    assert iou(second, truth) >= 0.8 > iou(first, truth)


def test_click_pixels_always_hold_their_sign():
    image, truth = square_scene()
    # A positive click on plain background, one on the square, and negatives inside the square and right by it.
    clicks = [(10, 10, True), (60, 40, True), (75, 55, False), (51, 31, False), (30, 100, True)]
    for n in range(1, len(clicks) + 1):
        mask = click_mask(image, clicks[:n])
        for x, y, positive in clicks[:n]:
            assert mask[y, x] == positive, (clicks[:n], (x, y))


def test_a_negative_click_on_the_background_leaves_the_object():
    image, truth = square_scene()
    mask = click_mask(image, [(75, 55, True), (45, 55, False)])  # 5 pixels left of the square
    assert not mask[55, 45] and iou(mask, truth) >= 0.8


def test_fractional_click_coordinates_round_to_the_nearest_pixel():
    image, _ = square_scene()
    mask = click_mask(image, [(75.4, 54.6, True), (5.6, 6.4, False)])
    assert mask[55, 75] and not mask[6, 6]


def test_deterministic_and_a_function_of_image_and_clicks_only():
    image, _ = square_scene()
    clicks = [(75, 55, True), (110, 50, False), (52, 78, True)]
    first = click_mask(image, clicks)
    again = click_mask(image.copy(), list(clicks), previous=~first)
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("clicks, message", [
    ([], "no clicks"),
    ([(75, 55, False)], "must be positive"),
    ([(75, 55, False), (10, 10, True)], "must be positive"),
    ([(W, 10, True)], "outside"),
    ([(10, -1, True)], "outside"),
    ([(75, 55, True), (10, H + 3, False)], "outside"),
    ([(float("nan"), 10, True)], "finite"),
])
def test_bad_clicks_raise_value_error(clicks, message):
    image, _ = square_scene()
    with pytest.raises(ValueError, match=message):
        click_mask(image, clicks)


def test_next_click_none_when_the_prediction_is_exact():
    _, truth = square_scene()
    assert next_click(truth, truth.copy()) is None
    assert next_click(np.zeros((H, W), bool), np.zeros((H, W), bool)) is None


def test_next_click_positive_at_the_centre_of_a_missed_square():
    truth = np.zeros((64, 64), bool)
    truth[10:31, 20:41] = True  # 21 x 21: one centre pixel, (x 30, y 20)
    assert next_click(truth, np.zeros_like(truth)) == (30, 20, True)
    x, y, positive = next_click(truth, np.zeros_like(truth))
    assert isinstance(x, int) and isinstance(y, int) and positive is True


def test_next_click_negative_in_a_false_positive_blob():
    truth = np.zeros((64, 96), bool)
    truth[10:30, 10:30] = True
    predicted = truth.copy()
    predicted[5:8, 10:30] = True                        # a thin false positive above the square
    cv2.circle(predicted.view(np.uint8), (70, 40), 12, 1, -1)   # and a large one: the larger error
    predicted[20, 20] = False                           # a one-pixel miss
    assert next_click(truth, predicted) == (70, 40, False)


def test_next_click_counts_the_image_border_as_boundary():
    truth = np.zeros((40, 40), bool)
    truth[:, :20] = True  # the left half: its farthest point from the boundary is 10 px in, not at the border
    x, y, positive = next_click(truth, np.zeros_like(truth))
    assert x in (9, 10) and 9 <= y <= 30 and positive
