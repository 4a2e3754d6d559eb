"""Brush strokes as masks."""
import numpy as np


def stroke_mask(size, points, radius):
    """The pixels (bool, ``size`` (h, w)) that a round brush of ``radius`` pixels covers when dragged along
    ``points`` ((x, y) in pixels: pixel (row i, column j) spans [j, j+1) x [i, i+1), so its centre is at
    (j + 0.5, i + 0.5)); a pixel is covered when its centre lies within ``radius`` of the polyline (one
    point: a dot)."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or not len(points):
        raise ValueError("a stroke needs a list of (x, y) points")
    radius = float(radius)
    if not np.isfinite(points).all() or not 0 < radius <= max(size):
        raise ValueError(f"a stroke needs finite points and a radius in (0, {max(size)}], got radius {radius}")
    height, width = size
    mask = np.zeros(size, bool)
    ends = zip(points, points[1:]) if len(points) > 1 else [(points[0], points[0])]
    for a, b in ends:
        x0, y0 = np.floor(np.minimum(a, b) - radius).astype(int)
        x1, y1 = np.ceil(np.maximum(a, b) + radius).astype(int)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
        if x0 >= x1 or y0 >= y1:
            continue
        ys, xs = np.mgrid[y0:y1, x0:x1] + 0.5
        d = b - a
        length2 = float(d @ d)
        s = np.clip(((xs - a[0]) * d[0] + (ys - a[1]) * d[1]) / length2, 0, 1) if length2 else 0.0
        near = (xs - a[0] - s * d[0]) ** 2 + (ys - a[1] - s * d[1]) ** 2 <= radius * radius
        mask[y0:y1, x0:x1] |= near
    return mask
