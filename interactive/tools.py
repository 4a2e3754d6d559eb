"""Annotation tools without weights: a box proposal by OpenCV's grabCut."""
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
