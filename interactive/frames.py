"""The frames of the video a session works on, kept at the working size on disk.

:class:`FrameCache` decodes frames on request (inference_core/data/frame_sources.py: a video file
in order with OpenCV, or a folder of image files), scales them down to the working
size (shorter side ``--size``, the resize of eval_generic.py's frames) and writes one
PNG per frame under the session's folder; a frame asked for again (slider, backward
runs, export) is read from its PNG, so the video file is decoded at most once and the
video is never held in memory. :class:`RunFrames` is a run's frame sequence for
``InferenceCore.run`` (any order of frames, one tensor made per request).
"""
import os
import threading

import cv2
import numpy as np
import torch

from inference_core.data import SequenceError
from inference_core.data.frame_sources import VideoFileFrames
from inference_core.video_runner import frame_tensor, resize_image
from util.fileio import atomic_write_bytes


def resize_frame(image, size):
    """uint8 (H, W, 3) scaled to ``size`` (h, w) as eval_generic.py scales frames (bilinear, antialiased), in uint8."""
    if tuple(image.shape[:2]) == tuple(size):
        return image
    x = resize_image(torch.from_numpy(image).permute(2, 0, 1).float().div_(255), size)
    return x.mul_(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def resize_labels(labels, size):
    """A label map scaled to ``size`` (h, w) by nearest neighbour."""
    if tuple(labels.shape) == tuple(size):
        return labels
    return cv2.resize(labels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)


class FrameCache:
    """Frames of ``source`` (a frame source) at ``size`` (h, w), cached as PNGs in ``folder``."""

    def __init__(self, source, folder, size):
        self.source, self.folder, self.size = source, folder, tuple(size)
        self.video_size = tuple(source.size(0))
        self.sequential = isinstance(source, VideoFileFrames)  # decoded in order: cache every frame passed
        self.reader = None
        self.decoded = 0  # video file: frames below this index are cached
        self.lock = threading.Lock()  # the slider and a propagation may ask at the same time
        os.makedirs(folder, exist_ok=True)

    def __len__(self):
        return len(self.source)

    def path(self, t):
        return os.path.join(self.folder, f"{t:06d}.png")

    def image(self, t):
        """Frame t at the working size, uint8 (h, w, 3) RGB."""
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} does not exist (the video has {len(self)} frames: 0..{len(self) - 1})")
        path = self.path(t)
        if not os.path.isfile(path):
            with self.lock:
                if not os.path.isfile(path):
                    self._decode(t)
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SequenceError(f"{path}: cached frame unreadable (remove it to decode the frame again)")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    def tensor(self, t, device):
        """Frame t as the network reads it: ImageNet-normalised (3, h, w) on ``device``."""
        return frame_tensor(self.image(t), self.size, device)

    def _decode(self, t):
        if self.reader is None:
            self.reader = self.source.reader()
        for i in range(self.decoded, t + 1) if self.sequential else (t,):
            image = self.reader.read(i)
            if tuple(image.shape[:2]) != self.video_size:
                raise SequenceError(f"{self.source.where(i)}: frame is {image.shape[1]}x{image.shape[0]} (WxH) "
                                    f"but the video is {self.video_size[1]}x{self.video_size[0]}")
            ok, data = cv2.imencode(".png", cv2.cvtColor(resize_frame(image, self.size), cv2.COLOR_RGB2BGR),
                                    [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise OSError(f"{self.path(i)}: cannot encode the cached frame")
            atomic_write_bytes(self.path(i), data.tobytes())
            if self.sequential:
                self.decoded = i + 1

    def close(self):
        with self.lock:
            if self.reader is not None:
                self.reader.close()
                self.reader = None


class RunFrames:
    """The frames ``order`` (video indices) of ``cache`` as ``InferenceCore.run`` reads them."""

    def __init__(self, cache, order, device):
        self.cache, self.order, self.device = cache, list(order), device

    def __len__(self):
        return len(self.order)

    def __getitem__(self, i):
        return self.cache.tensor(self.order[i], self.device)


def to_size(mask, size, what="mask"):
    """A mask or label map at ``size`` (h, w); it must already have it or be given at another size."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{what} must be 2-D (H, W), got shape {mask.shape}")
    return resize_labels(mask.astype(np.uint8), size).astype(bool if mask.dtype == bool else np.uint8)
