"""Overlays for looking at results: mask colours blended over the frames,
written as a strip of thumbnails (PNG), an animated GIF or an mp4 video.

Overlays are written as a stream (:class:`OverlayWriter`): one frame is
blended and handed to the encoder at a time, so no overlay holds the whole
video. The mp4 and the GIF go to a temporary file beside the target that is
renamed when the last frame is in; the strip keeps only its few thumbnails.
"""
import contextlib
import io

import cv2
import numpy as np
from PIL import GifImagePlugin, Image

from util.fileio import atomic_open, atomic_path, atomic_write_bytes
from util.palette import DAVIS_PALETTE

OVERLAY_KINDS = {"strip": ".png", "gif": ".gif", "mp4": ".mp4"}
STRIP_COUNT, STRIP_HEIGHT = 8, 160


def blend(image, labels, palette=DAVIS_PALETTE, alpha=0.5):
    """``image`` (H, W, 3 uint8) with every labelled pixel mixed with its palette colour."""
    if image.shape[:2] != labels.shape:
        raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]} but the mask {labels.shape[1]}x{labels.shape[0]}")
    colours = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)[labels]
    mixed = (1 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    out = np.where((labels > 0)[..., None], np.round(mixed), image)
    return out.astype(np.uint8)


def strip_picks(total, count=STRIP_COUNT):
    """Indices of the (up to ``count``) evenly spaced images a strip of ``total`` images shows."""
    return [int(i) for i in np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))]


def thumbnail(image, height=STRIP_HEIGHT):
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * height / h)), height), interpolation=cv2.INTER_AREA)


def strip(images, count=STRIP_COUNT, height=STRIP_HEIGHT):
    """Up to ``count`` evenly spaced images, scaled to ``height``, side by side."""
    return np.concatenate([thumbnail(images[i], height) for i in strip_picks(len(images), count)], axis=1)


def _png_bytes(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class OverlayWriter:
    """Write an overlay of ``total`` frames to ``path`` one frame at a time::

        with OverlayWriter(path, "mp4", total, palette, fps) as writer:
            for frame, labels in ...:
                writer.add(frame, labels)

    The file appears (atomically) when the block ends without an error and all
    ``total`` frames were added; on an error nothing is left behind. mp4: at
    ``fps`` (the source frame rate for video files), even width and height (the
    last row/column is cut when odd). GIF: one adaptive palette per frame.
    """

    def __init__(self, path, kind, total, palette=DAVIS_PALETTE, fps=10):
        if kind not in OVERLAY_KINDS:
            raise ValueError(f"overlay kind must be one of {sorted(OVERLAY_KINDS)}, got {kind!r}")
        if total < 1:
            raise ValueError(f"{path}: an overlay needs at least one frame")
        self.path, self.kind, self.total, self.palette, self.fps = path, kind, total, palette, fps
        self.count = 0
        self.size = None
        self.picks = set(strip_picks(total)) if kind == "strip" else set()
        self.tiles = []
        self.bytes_written = 0  # GIF bytes handed to the file so far (it is written frame by frame)
        self._stack = contextlib.ExitStack()
        self._writer = None  # cv2.VideoWriter or the GIF file

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        try:
            if self._writer is not None and self.kind == "mp4":
                self._writer.release()
            if kind is None:
                self._finish()
                if self.kind == "gif":
                    self._writer.write(b";")  # GIF trailer
        except BaseException as failure:
            kind, error, traceback = type(failure), failure, failure.__traceback__
            raise
        finally:
            # The temporary file: renamed to the target on success, removed on an error.
            self._stack.__exit__(kind, error, traceback)
        return False

    def add(self, frame, labels):
        image = blend(frame, labels, self.palette)
        if self.size is None:
            self.size = image.shape[:2]
            self._open(image)
        elif image.shape[:2] != self.size:
            raise ValueError(f"{self.path}: frame {self.count} is {image.shape[1]}x{image.shape[0]} but the first "
                             f"{self.size[1]}x{self.size[0]}")
        if self.count >= self.total:
            raise ValueError(f"{self.path}: more than the {self.total} frames announced")
        if self.kind == "mp4":
            height, width = self._even
            self._writer.write(cv2.cvtColor(np.ascontiguousarray(image[:height, :width]), cv2.COLOR_RGB2BGR))
        elif self.kind == "gif":
            self._gif_frame(image)
        elif self.count in self.picks:
            self.tiles.append(thumbnail(image))
        self.count += 1

    def _open(self, image):
        if self.kind == "mp4":
            height, width = image.shape[:2]
            self._even = height - height % 2, width - width % 2  # codecs want even sizes
            tmp = self._stack.enter_context(atomic_path(self.path, suffix=".mp4"))  # OpenCV needs a file name
            self._writer = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), float(self.fps),
                                           (self._even[1], self._even[0]))
            if not self._writer.isOpened():
                raise OSError(f"{self.path}: OpenCV cannot write mp4 video here")
        elif self.kind == "gif":
            self._writer = self._stack.enter_context(atomic_open(self.path, "wb"))

    def _gif_frame(self, image):
        frame = Image.fromarray(image).convert("P", palette=Image.Palette.ADAPTIVE)
        duration = round(1000 / self.fps)
        chunks = []
        if self.count == 0:
            header, _ = GifImagePlugin.getheader(frame, None, {"loop": 0, "duration": duration})
            chunks.append(b"".join(header))
        chunks += GifImagePlugin.getdata(frame, duration=duration, include_color_table=True)
        for chunk in chunks:
            self.bytes_written += self._writer.write(chunk)

    def _finish(self):
        if self.count != self.total:
            raise ValueError(f"{self.path}: {self.count} frames added but {self.total} announced")
        if self.kind == "strip":
            atomic_write_bytes(self.path, _png_bytes(np.concatenate(self.tiles, axis=1)))


def write_overlay(path, kind, frames, label_maps, palette=DAVIS_PALETTE, fps=10):
    """Blend ``label_maps`` over ``frames`` (sequences of arrays) and write ``path`` as ``kind``; the frames
    are taken one at a time (see :class:`OverlayWriter`), so lazy sequences keep memory flat."""
    if kind not in OVERLAY_KINDS:
        raise ValueError(f"overlay kind must be one of {sorted(OVERLAY_KINDS)}, got {kind!r}")
    if not frames or len(frames) != len(label_maps):
        raise ValueError(f"{path}: need as many masks as frames, got {len(label_maps)} and {len(frames)}")
    with OverlayWriter(path, kind, len(frames), palette, fps) as writer:
        for frame, labels in zip(frames, label_maps):
            writer.add(frame, labels)
