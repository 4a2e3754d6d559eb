"""Atomic file writing and small I/O helpers shared by every script (reading a frame image too).

Every output this project writes (masks, checkpoints, CSV tables, archives)
goes through :func:`atomic_write`: the data is written to a temporary file in
the same folder and renamed over the target, so an interrupted run never
leaves a truncated file behind.
"""
import contextlib
import io
import os
import tempfile

import numpy as np
from PIL import Image


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """A temporary file name beside ``path`` (for writers that need a name, such
    as OpenCV's); the file is renamed to ``path`` on success, removed on error."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        # mkstemp creates the file readable by its owner only; give it the usual mode.
        os.chmod(tmp, 0o666 & ~current_umask())
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode="wb"):
    """Open a temporary file beside ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path, data: bytes):
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path):
    """``torch.save`` through a temporary file and a rename."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_frame(path) -> np.ndarray:
    """Read an RGB frame as ``uint8`` H x W x 3, with a clear error naming the file."""
    path = os.fspath(path)
    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: frame not found") from None
    except Exception as error:
        raise ValueError(f"{path}: unreadable image ({error})") from None
