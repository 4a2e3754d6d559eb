"""Frame sources: where a video's frames come from.

A folder of image files (:class:`FrameFiles`) or a video file decoded in order
with OpenCV (:class:`VideoFileFrames`). Both give the frame count, the frame
names, the frame size and a reader whose ``read(t)`` returns frame t as RGB
``uint8``; frames are requested in increasing order, so a video file is decoded
once, front to back, and never held in memory as a whole. Every error is a
``SequenceError`` whose message names the file and what is wrong with it.
"""
import os

import cv2
import numpy as np
from PIL import Image

from inference_core.data import SequenceError
from util.fileio import load_frame

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


class FrameFiles:
    """Frames stored one image file per frame."""

    fps = None  # unknown: overlays use DEFAULT_FPS

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return len(self.paths)

    def name(self, t):
        return stem(self.paths[t])

    def where(self, t):
        """Frame t for messages: its file."""
        return self.paths[t]

    def size(self, t=0):
        """(H, W) of frame t, from the file header."""
        return image_size(self.paths[t])

    def reader(self):
        return _FileReader(self.paths)


class _FileReader:
    def __init__(self, paths):
        self.paths = paths

    def read(self, t):
        return load_frame(self.paths[t])

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


IMAGE_EXTENSIONS = (*FRAME_EXTENSIONS, ".bmp", ".tif", ".tiff", ".webp")


def _open_capture(path):
    """An opened cv2.VideoCapture of ``path``, or a SequenceError naming the file."""
    if not os.path.exists(path):
        raise SequenceError(f"{path}: video file not found")
    if not os.path.isfile(path):
        raise SequenceError(f"{path}: not a video file (a folder? give frame folders with --frames)")
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as error:
        raise SequenceError(f"{path}: cannot read the video file ({error.strerror or error})") from None
    if path.lower().endswith(IMAGE_EXTENSIONS):
        raise SequenceError(f"{path}: an image, not a video file; give a folder of frames with --frames")
    # Our message says what is wrong; FFmpeg's own lines ("moov atom not found") only if asked for.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        capture.release()
        raise SequenceError(f"{path}: not a readable video (OpenCV cannot open it: not a video, truncated, "
                            "corrupt, or a codec this OpenCV build lacks)")
    if int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little") == b"ansi":
        capture.release()  # FFmpeg renders any text file as a video of the text
        raise SequenceError(f"{path}: not a video (a text file)")
    return capture


class VideoFileFrames:
    """The frames of a video file (mp4, avi, ...), decoded with OpenCV in order and converted BGR -> RGB.

    Opening it decodes the whole file once without keeping any frame, to count
    the frames (the container's count is not trusted) and to check that they
    all decode: a file that cannot be opened, has no frame, or decodes fewer
    frames than its header announces (truncated or corrupt) raises a
    SequenceError naming the file. Frame t is named by its index (00000, ...).
    """

    def __init__(self, path):
        self.path = path
        capture = _open_capture(path)
        try:
            announced = capture.get(cv2.CAP_PROP_FRAME_COUNT)
            fps = capture.get(cv2.CAP_PROP_FPS)
            ok, first = capture.read()
            if not ok or first is None:
                raise SequenceError(f"{path}: not a readable video (no frame could be decoded)")
            count = 1
            while capture.grab():
                count += 1
        finally:
            capture.release()
        if announced > 0 and count < int(announced):
            raise SequenceError(f"{path}: truncated or corrupt video: the file announces {int(announced)} frames "
                                f"but only {count} could be decoded")
        self.count = count
        self.frame_size = tuple(first.shape[:2])
        self.fps = fps if fps and np.isfinite(fps) and 0 < fps < 1000 else None
        self.digits = max(5, len(str(count - 1)))

    def __len__(self):
        return self.count

    def name(self, t):
        return f"{t:0{self.digits}d}"

    def where(self, t):
        return f"{self.path} (frame {t})"

    def size(self, t=0):
        return self.frame_size

    def reader(self):
        return _VideoReader(self)


class _VideoReader:
    """Sequential decoding: ``read(t)`` with t never below the previous request; the
    frames in between are decoded (grab) but not converted."""

    def __init__(self, source):
        self.source = source
        self.capture = _open_capture(source.path)
        self.position = 0          # index of the next frame the capture gives
        self.last = (None, None)   # (t, image) of the last frame read

    def read(self, t):
        if self.last[0] == t:
            return self.last[1]
        if t < self.position:
            raise ValueError(f"{self.source.path}: frames must be read in increasing order "
                             f"(frame {t} after frame {self.position - 1})")
        path = self.source.path
        while self.position < t:
            if not self.capture.grab():
                raise SequenceError(f"{path}: cannot decode frame {self.position} (the file changed or is corrupt)")
            self.position += 1
        ok, image = self.capture.read()
        if not ok or image is None:
            raise SequenceError(f"{path}: cannot decode frame {t} (the file changed or is corrupt)")
        self.position += 1
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
        self.last = (t, np.ascontiguousarray(image, dtype=np.uint8))
        return self.last[1]

    def close(self):
        if self.capture is not None:
            self.capture.release()
            self.capture = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def list_frames(folder):
    """Sorted frame files of a folder; an error if there is none."""
    if not os.path.isdir(folder):
        raise SequenceError(f"{folder}: frame folder not found")
    names = sorted(f for f in os.listdir(folder) if f.lower().endswith(FRAME_EXTENSIONS) and not f.startswith("."))
    if not names:
        raise SequenceError(f"{folder}: no frames (.jpg/.jpeg/.png) in this folder")
    return [os.path.join(folder, f) for f in names]


def image_size(path):
    """(H, W) of an image from its header, with an error naming the file."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise SequenceError(f"{path}: frame not found") from None
    except Exception as error:  # PIL raises many types for broken files
        raise SequenceError(f"{path}: unreadable image ({error})") from None
    return height, width
