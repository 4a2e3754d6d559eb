"""A session's annotations and masks with their undo history: every change on disk before it returns.

An edit of frame t sets or clears objects there (``commit``): the objects' pixels in the frame's
annotation and in its mask become the given masks, the annotation's new revision is committed
(interactive/store.py), then the mask is written. Undo and redo restore a frame's annotation and mask
exactly as they were (their PNG bytes are kept per edit, at most ``HISTORY`` edits).
"""
import collections
import dataclasses
import hashlib
import io
import os

import numpy as np
from PIL import Image

from interactive.store import SessionError
from util.palette import AnnotationError, encode_palette_png, load_annotation

HISTORY = 50  # edits that undo can take back, per session


def with_object(labels, k, mask=None):
    """A copy of the label map ``labels`` where object k has exactly the pixels of ``mask`` (None: none)."""
    labels = np.where(labels == k, 0, labels).astype(np.uint8)
    if mask is not None:
        labels[mask] = k
    return labels


@dataclasses.dataclass
class Edit:
    """One committed change of a frame: the annotation's and the mask's PNG bytes before and after (b"":
    none), the objects annotated there before and after, and what the page says of it."""
    frame: int
    objects_before: set
    annotation_before: bytes
    mask_before: bytes
    objects_after: set
    annotation_after: bytes
    mask_after: bytes
    message: str


@dataclasses.dataclass
class EditResult:
    frame: int
    state: str            # the frame's state after the edit (for the next edit's ``expect``)
    message: str          # e.g. "frame 12, object 2: +340 pixels"


class Annotations:
    """The annotations (``by_frame``: t -> (labels uint8 at the video's size, set of object ids, revision))
    and masks of a session's ``store``, and the undo and redo histories."""

    def __init__(self, store, palette):
        self.store, self.palette = store, palette
        self.by_frame = store.annotations()
        self.video_size = store.video_size
        self.undone, self.done = [], collections.deque(maxlen=HISTORY)
        for t in self.by_frame:  # a kill between an annotation's commit and its mask: paste it again
            self._write_mask(t, self._pasted(t, self.mask(t)))

    def mask(self, t):
        """Frame t's label map at the video's size; zeros before any result."""
        if not os.path.isfile(self.store.mask_path(t)):
            return np.zeros(self.video_size, np.uint8)
        try:
            return load_annotation(self.store.mask_path(t), allow_grayscale=False)
        except AnnotationError as error:
            raise SessionError(str(error)) from None

    def state(self, t):
        """A name of frame t's state: its mask, its annotation and the objects annotated there."""
        digest = hashlib.sha1(self.store.mask_bytes(t))
        digest.update(self.store.annotation_bytes(t))
        digest.update(repr(sorted(self.by_frame.get(t, (None, set()))[1])).encode())
        return digest.hexdigest()[:16]

    def objects(self):
        return sorted({k for _, objects, _ in self.by_frame.values() for k in objects})

    def commit(self, t, changes):
        """Apply {object id: bool mask at the video's size, or None to clear} to frame t."""
        labels, objects, _ = self.by_frame.get(t, (np.zeros(self.video_size, np.uint8), set(), 0))
        shown = self.mask(t)
        new_labels, new_objects, new_shown, parts = labels, set(objects), shown, []
        for k, mask in changes.items():
            new_labels, new_shown = with_object(new_labels, k, mask), with_object(new_shown, k, mask)
            if mask is None:
                new_objects.discard(k)
                parts.append(f"object {k} cleared ({int((shown == k).sum())} pixels)")
            else:
                new_objects.add(k)
                added, removed = int((mask & (shown != k)).sum()), int(((shown == k) & ~mask).sum())
                parts.append(f"object {k}: +{added}" + (f" -{removed}" if removed else "") + " pixels")
        edit = Edit(t, set(objects), self.store.annotation_bytes(t), self.store.mask_bytes(t), new_objects, b"", b"",
                    f"frame {t}, " + ", ".join(parts))
        edit.annotation_after = self.store.write_annotation(t, new_labels, new_objects)
        edit.mask_after = self._write_mask(t, new_shown)
        self._set(t, new_labels, new_objects)
        self.done.append(edit)
        self.undone.clear()
        return EditResult(t, self.state(t), edit.message)

    def replay(self, undo):
        """Undo (``undo``) or redo the last edit: its frame's annotation and mask as they were."""
        source, target = (self.done, self.undone) if undo else (self.undone, self.done)
        if not source:
            raise SessionError(f"nothing to {'undo' if undo else 'redo'}")
        edit = source.pop()
        objects = edit.objects_before if undo else edit.objects_after
        data = edit.annotation_before if undo else edit.annotation_after
        labels = _labels(data, self.video_size) if data else None
        self.store.write_annotation(edit.frame, labels, objects if data else set(), data=data or None)
        self.store.write_mask_bytes(edit.frame, edit.mask_before if undo else edit.mask_after)
        self._set(edit.frame, labels, objects if data else set())
        target.append(edit)
        return EditResult(edit.frame, self.state(edit.frame), f"{'undid' if undo else 'redid'} {edit.message}")

    def _set(self, t, labels, objects):
        if objects:
            self.by_frame[t] = (labels, set(objects), self.store.manifest["annotations"][str(t)]["revision"])
        else:
            self.by_frame.pop(t, None)

    def _pasted(self, t, shown):
        """Frame t's mask with its annotation pasted over it (the annotated objects exactly as annotated)."""
        labels, objects, _ = self.by_frame[t]
        for k in sorted(objects):
            shown = with_object(shown, k, labels == k)
        return shown

    def _write_mask(self, t, labels):
        data = encode_palette_png(labels, self.palette)
        if data != self.store.mask_bytes(t):
            self.store.write_mask_bytes(t, data)
        return data


def _labels(data, size):
    """A label map from palette PNG bytes that this session wrote."""
    with Image.open(io.BytesIO(data)) as image:
        labels = np.array(image, dtype=np.uint8)
    if labels.shape != tuple(size):
        raise SessionError(f"an undo record is {labels.shape[1]}x{labels.shape[0]}, not the video's size")
    return labels
