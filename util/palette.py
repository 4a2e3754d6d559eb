"""DAVIS palette and reading/writing of palette (indexed) PNG annotations."""
import io
import os

import numpy as np
from PIL import Image

from util.fileio import atomic_write_bytes


class AnnotationError(ValueError):
    """An annotation file that cannot be used; the message names the file."""


def davis_palette() -> bytes:
    """The 256-colour DAVIS palette (the PASCAL VOC colour map), 768 bytes."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in range(256):
        c, r, g, b = label, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[label] = (r, g, b)
    return palette.tobytes()


DAVIS_PALETTE = davis_palette()


def encode_palette_png(labels: np.ndarray, palette: bytes = DAVIS_PALETTE) -> bytes:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"label map must be 2-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError("label ids must lie in 0..255 to be saved as a palette PNG")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def save_palette_png(path, labels: np.ndarray, palette: bytes = DAVIS_PALETTE):
    """Write ``labels`` (H x W ints in 0..255) as an indexed PNG, atomically."""
    atomic_write_bytes(path, encode_palette_png(labels, palette))


def load_annotation(path, allow_grayscale: bool = True) -> np.ndarray:
    """Read an annotation PNG as an ``uint8`` label map (H x W).

    Palette ("P") images give their indices; single-channel ("L") images their
    values when ``allow_grayscale``. RGB/RGBA images are refused: their colours
    are not label ids, and guessing a mapping silently corrupts objects.
    """
    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "P":
                return np.array(image, dtype=np.uint8)
            if mode in ("L", "I", "I;16") and allow_grayscale:
                array = np.array(image)
                if array.size and array.max() > 255:
                    raise AnnotationError(f"{path}: label ids above 255 in a {mode} image")
                return array.astype(np.uint8)
    except AnnotationError:
        raise
    except FileNotFoundError:
        raise AnnotationError(f"{path}: annotation file not found") from None
    except Exception as error:  # PIL raises many types for broken files
        raise AnnotationError(f"{path}: unreadable image ({error})") from None
    raise AnnotationError(
        f"{path}: annotation is a {mode} image; expected a palette (indexed, mode P) PNG whose "
        "pixel values are object ids (convert RGB colour masks to indices first)")


def load_palette(path) -> bytes:
    """The palette of a palette PNG, or the DAVIS palette if it has none."""
    with Image.open(path) as image:
        palette = image.getpalette()
    if not palette:
        return DAVIS_PALETTE
    return bytes(palette[:768]).ljust(768, b"\0")

