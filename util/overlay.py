"""Overlays for looking at results: mask colours blended over the frames,
written as a strip of thumbnails (PNG), an animated GIF or an mp4 video."""
import io

import cv2
import numpy as np
from PIL import Image

from util.fileio import atomic_path, atomic_write_bytes
from util.palette import DAVIS_PALETTE

OVERLAY_KINDS = {"strip": ".png", "gif": ".gif", "mp4": ".mp4"}


def blend(image, labels, palette=DAVIS_PALETTE, alpha=0.5):
    """``image`` (H, W, 3 uint8) with every labelled pixel mixed with its palette colour."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]} but the mask {labels.shape[1]}x{labels.shape[0]}")
    colours = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)[labels]
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    out = np.where((labels > 0)[..., None], np.round(mixed), image)
    return out.astype(np.uint8)


def strip(images, count=8, height=160):
    """Up to ``count`` evenly spaced images, scaled to ``height``, side by side."""
    picks = np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).round().astype(int))
    tiles = []
    for i in picks:
        h, w = images[i].shape[:2]
        tiles.append(cv2.resize(images[i], (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA))
    return np.concatenate(tiles, axis=1)


def _png_bytes(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _gif_bytes(images, fps):
    frames = [Image.fromarray(image) for image in images]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                   duration=round(1000 / fps), loop=0)
    return buffer.getvalue()


def _write_mp4(path, images, fps):
    """OpenCV writes to a file name: give it the temporary one of atomic_path."""
    height, width = images[0].shape[:2]
    height, width = height - height % 2, width - width % 2  # codecs want even sizes
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise OSError(f"{path}: OpenCV cannot write mp4 video here")
        for image in images:
            writer.write(cv2.cvtColor(image[:height, :width], cv2.COLOR_RGB2BGR))
        writer.release()


def write_overlay(path, kind, frames, label_maps, palette=DAVIS_PALETTE, fps=10):
    """Blend ``label_maps`` over ``frames`` (lists of arrays) and write ``path`` as ``kind``."""
    if kind not in OVERLAY_KINDS:
        raise ValueError(f"overlay kind must be one of {sorted(OVERLAY_KINDS)}, got {kind!r}")
    if not frames or len(frames) != len(label_maps):
        raise ValueError(f"{path}: need as many masks as frames, got {len(label_maps)} and {len(frames)}")
    images = [blend(f, m, palette) for f, m in zip(frames, label_maps)]
    if kind == "strip":
        atomic_write_bytes(path, _png_bytes(strip(images)))
    elif kind == "gif":
        atomic_write_bytes(path, _gif_bytes(images, fps))
    else:
        _write_mp4(path, images, fps)
