"""Annotation tools without weights, by OpenCV's grabCut: a box proposal and click to mask (and the click
simulation of interactive segmentation benchmarks, next_click)."""
import cv2
import numpy as np


def grabcut_box(image, box, iterations=5):
    """Foreground (bool (H, W)) of OpenCV's grabCut initialised with ``box`` (x0, y0, x1, y1, corners in
    pixels of ``image``, uint8 RGB (H, W, 3), in any order). Deterministic (OpenCV's RNG seeded)."""
    height, width = image.shape[:2]
    x0, x1 = sorted(int(round(v)) for v in (box[0], box[2]))
    y0, y1 = sorted(int(round(v)) for v in (box[1], box[3]))
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = min(width - 1, x1), min(height - 1, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"the box ({x0}, {y0}) - ({x1}, {y1}) is too small for grabCut (3 pixels at least)")
    if x1 - x0 >= width - 1 and y1 - y0 >= height - 1:
        x0, y0, x1, y1 = 1, 1, width - 2, height - 2  # grabCut needs some background outside the box
    mask = np.zeros((height, width), np.uint8)
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), mask, (x0, y0, x1 - x0 + 1, y1 - y0 + 1), background,
                foreground, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


# Click to mask: OpenCV's grabCut seeded by the clicks, coarse to fine. Chosen by measurement (the protocol of
# scripts/benchmark_click_mask.py, on its frames and on noisier, blurred and small-object variants of them)
# over a colour flood fill, alone (it leaks on smooth backgrounds and stops at once on noisy objects) or as
# grabCut's seed in a box round it, and over a marker watershed on the image (less accurate).
# Sizes are fractions of the frame's short side, so that a click behaves the same at any working size.
COARSE_SIDE = 256     # pass 1: the whole frame, long side brought down to this (grabCut's time grows with pixels)
FINE_SIDE = 320       # pass 2: pass 1's object box plus MARGIN, long side at most this: the outline
MARGIN = 0.15
ITERATIONS = 2        # pass 1's; pass 2 starts from pass 1's answer and does one less
SEED_RADIUS = 0.08    # the first click's disk of probable foreground (its colours start the object's model) is
MIN_SEED_RADIUS = 0.02  # at most this, at least this, and within EDGE_FRACTION x the distance to the nearest
EDGE_FRACTION = 0.8   # outline: so that a small object's seed does not take in its neighbours' colours
EDGE = 18.0           # an outline: a colour step (0..255 a pixel, any channel) at least this steep and
TEXTURE_FACTOR = 1.5  # this many times the steepest step round the click (the object's own texture)
CLICK_RADIUS = 0.002  # each click pins a disk this small: a larger one put across a thin error spoils the models
RING = 0.02           # a negative click is inside the mask where the mask covers most of a ring this wide


def _check_clicks(clicks, height, width):
    """Clicks as (column, row, positive) pixel indices; ValueError (one line) for a list click_mask refuses."""
    if len(clicks) == 0:
        raise ValueError("no clicks: the first click must be a positive one on the object")
    checked = []
    for click in clicks:
        try:
            x, y, positive = click
            column, row = int(round(float(x))), int(round(float(y)))
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"a click must be (x, y, positive) with finite x and y, got {click!r}") from None
        if not (0 <= column < width and 0 <= row < height):
            raise ValueError(f"the click ({x}, {y}) lies outside the {width}x{height} image")
        checked.append((column, row, bool(positive)))
    if not checked[0][2]:
        raise ValueError(f"the first click, at ({clicks[0][0]}, {clicks[0][1]}), must be positive (on the object)")
    return checked


def _resized(image, side):
    """(``image`` with its long side at most ``side``, the scale applied)."""
    scale = min(1.0, side / max(image.shape[:2]))
    if scale == 1.0:
        return image, scale
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), scale


def _grabcut(image, labels, iterations):
    """Foreground of grabCut on RGB ``image`` from the GC_* ``labels`` (overwritten); OpenCV's RNG seeded."""
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), labels, None, background, foreground, iterations,
                cv2.GC_INIT_WITH_MASK)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def _pin_clicks(labels, clicks, origin, scale, radius):
    """Sure foreground / background disks at the clicks, in order (a later click wins where two overlap)."""
    for x, y, positive in clicks:
        centre = (int(round((x - origin[0]) * scale)), int(round((y - origin[1]) * scale)))
        cv2.circle(labels, centre, max(1, int(round(radius * scale))), cv2.GC_FGD if positive else cv2.GC_BGD, -1)


def _upsampled(mask, size):
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_LINEAR) > 0


def _clicked_parts(mask, clicks):
    """``mask`` with the clicks' pixels set (a later click wins), split between positive and negative clicks,
    less its parts (8-connected) that hold no positive click: grabCut's colour models also take look-alike
    regions elsewhere in the frame."""
    mask = _split(mask, clicks)
    for x, y, positive in clicks:
        mask[y, x] = positive
    _, parts = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return np.isin(parts, [parts[y, x] for x, y, _ in clicks if mask[y, x]]) & mask


def _split(mask, clicks):
    """``mask`` less the part that a negative click inside it claims: the pixels nearer to it than to any
    positive click, through the mask (a marker watershed on a flat floor walled off outside the mask, i.e.
    a breadth-first flood). This takes out what the colour models cannot: a look-alike region joined to the
    object. A negative click is inside where the mask covers most of a ring round it (grabCut leaves a small
    hole where the click is pinned). Colour steps are left out on purpose: a watershed on the image follows
    the object's own texture (a stripe of the look-alike's colour) and cuts deep into it."""
    radius = max(3, int(round(RING * min(mask.shape))))
    ring, markers = np.zeros(mask.shape, np.uint8), np.zeros(mask.shape, np.int32)
    for x, y, positive in clicks:
        if not positive:
            ring[:] = 0
            cv2.circle(ring, (x, y), radius, 1, 1)
            if mask[ring > 0].mean() >= 0.5:
                cv2.circle(markers, (x, y), radius - 1, 2, -1)
    if not markers.any():
        return mask.copy()
    for x, y, positive in clicks:
        if positive:
            markers[y, x] = 1
    floor = np.where((mask | (markers == 2))[..., None], 0, 255).astype(np.uint8).repeat(3, axis=2)
    cv2.watershed(floor, markers)
    return mask & (markers != 2)  # the watershed line (-1) stays in the object


def _seed_radius(small, centre, scale, short):
    """Radius (pixels of ``small``) of the first click's probable-foreground disk."""
    gradient = np.abs(np.stack([cv2.Scharr(small, cv2.CV_32F, 1, 0), cv2.Scharr(small, cv2.CV_32F, 0, 1)]))
    gradient = gradient.max(axis=(0, 3)) * (scale / 32)   # Scharr's gain is 32; per pixel of the frame
    smallest = max(2.0, MIN_SEED_RADIUS * short * scale)
    near = np.zeros(gradient.shape, np.uint8)
    cv2.circle(near, centre, int(round(smallest)), 1, -1)
    # An outline is a colour step steeper than EDGE and than the object's own texture round the click.
    steep = gradient >= max(EDGE, TEXTURE_FACTOR * gradient[near > 0].max())
    distance = cv2.distanceTransform((~steep).astype(np.uint8), cv2.DIST_L2, 3)[centre[1], centre[0]]
    return float(np.clip(EDGE_FRACTION * distance, smallest, SEED_RADIUS * short * scale))


def click_mask(image, clicks, previous=None):
    """The object (bool (H, W)) that ``clicks`` select on ``image`` (uint8 RGB (H, W, 3)): (x, y, positive) in
    pixels, in the order made, the first positive. The first click selects the object under it, later ones
    add (positive) or remove (negative) parts. A function of (image, clicks) only and deterministic, so that
    replaying the click list gives the same mask; ``previous`` is accepted and ignored. The mask holds every
    positive click's pixel and no negative click's (where two clicks fall on one pixel, the later wins).
    ValueError for no clicks, a negative first click, a click outside the image, or an image not uint8 RGB."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"the image must be uint8 RGB (H, W, 3), got {image.dtype} {image.shape}")
    image = np.ascontiguousarray(image)
    height, width = image.shape[:2]
    clicks = _check_clicks(clicks, height, width)
    short = min(height, width)
    # Pass 1, the whole frame at a low resolution, so no guess of the object's extent is needed. The first
    # click's disk is only probable foreground (its colours start the foreground model, grabCut may drop the
    # parts of it that are background); later clicks are corrections and pin only their own pixel or so.
    small, scale = _resized(image, COARSE_SIDE)
    labels = np.full(small.shape[:2], cv2.GC_PR_BGD, np.uint8)
    centre = (int(round(clicks[0][0] * scale)), int(round(clicks[0][1] * scale)))
    cv2.circle(labels, centre, int(round(_seed_radius(small, centre, scale, short))), cv2.GC_PR_FGD, -1)
    _pin_clicks(labels, clicks, (0, 0), scale, CLICK_RADIUS * short)
    mask = _clicked_parts(_upsampled(_grabcut(small, labels, ITERATIONS), (width, height)), clicks)
    if not mask.any():  # a later negative click on the first click's pixel
        return mask
    # Pass 2, the object's box plus a margin at a finer resolution, from pass 1's answer: the outline.
    rows, columns = np.nonzero(mask)
    pad = int(MARGIN * short) + 1
    x0, x1 = max(0, columns.min() - pad), min(width, columns.max() + pad + 1)
    y0, y1 = max(0, rows.min() - pad), min(height, rows.max() + pad + 1)
    crop, scale = _resized(image[y0:y1, x0:x1], FINE_SIDE)
    prior = cv2.resize(mask[y0:y1, x0:x1].astype(np.uint8), crop.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    labels = np.where(prior > 0, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    _pin_clicks(labels, clicks, (x0, y0), scale, CLICK_RADIUS * short)
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = _upsampled(_grabcut(crop, labels, ITERATIONS - 1), (x1 - x0, y1 - y0))
    return _clicked_parts(mask, clicks)


def next_click(truth, predicted):
    """The next click of the usual interactive-segmentation simulation: (x, y, positive) at the pixel farthest
    from the boundary of the larger error region (missed object: positive; wrongly included: negative), the
    image border counting as boundary; None where ``predicted`` equals ``truth`` (bool (H, W) both)."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    best = None
    for error, positive in ((truth & ~predicted, True), (predicted & ~truth, False)):
        if not error.any():
            continue
        # Padded with zeros so that the distance is also to the image border; exact Euclidean distances.
        distance = cv2.distanceTransform(np.pad(error, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        row, column = np.unravel_index(np.argmax(distance), distance.shape)
        if best is None or distance[row, column] > best[0]:  # a tie goes to the missed part
            best = (distance[row, column], int(column) - 1, int(row) - 1, positive)
    return None if best is None else best[1:]
