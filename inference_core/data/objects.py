"""The objects of a video: which annotation gives which object, and the one map between the
annotations' object ids and the core's.

An annotation is a label map whose pixel values are object ids (1..255, 0 the background: a palette
PNG's indices). The core numbers the objects 1..K in the order they are introduced (by id within an
annotation): :class:`ObjectIds` is that map, for the readers (:func:`load_objects`, a video's
annotation files) and for the demo's propagation (interactive/propagation.py, a session's
annotations in run order).
"""
import dataclasses

import numpy as np

from inference_core.data import SequenceError
from util.palette import DAVIS_PALETTE, load_annotation, load_palette


class ObjectIds:
    """Object ids (1..255) and the core's internal ids 1..K, numbered in the order of ``introduce``."""

    def __init__(self):
        self.introduced = {}  # original id -> the key (frame, run position) it was introduced at, in order

    def __contains__(self, object_id):
        return object_id in self.introduced

    def __len__(self):
        return len(self.introduced)

    def introduce(self, key, labels, ids=None):
        """The new ids of the annotation ``labels`` at ``key``, sorted: those with pixels there (of ``ids``;
        None: every nonzero label) that no earlier annotation introduced. They are introduced at ``key``."""
        new = [k for k in map(int, np.unique(labels)) if k != 0 and (ids is None or k in ids) and k not in self]
        self.introduced.update((k, key) for k in new)
        return new

    def arrays(self):
        """(to_original, to_internal): ``to_original[i]`` is the id of internal object i (0: background);
        ``to_internal`` maps every id 0..255 to its internal id (0 for ids not introduced)."""
        to_original = np.array([0, *self.introduced], dtype=np.uint8)
        to_internal = np.zeros(256, dtype=np.int64)
        to_internal[to_original] = np.arange(len(to_original))
        return to_original, to_internal


def given_labels(labels, ids):
    """``labels`` with the pixels of ``ids`` kept and the others 0, as uint8."""
    return np.where(np.isin(labels, ids), labels, 0).astype(np.uint8)


@dataclasses.dataclass
class VideoObjects:
    """The objects of a video, read from its annotations.

    ``given[t]``: label map (original ids) of the objects given at frame t (for a reader's video:
    those first given there), other pixels 0; ``new_ids[t]``: their ids. Internal ids 1..K number
    the objects in order of appearance (by id within a frame); ``to_original[i]`` is the id of
    internal object i.
    """
    given: dict
    new_ids: dict
    to_original: np.ndarray
    to_internal: np.ndarray
    size: tuple                  # (H, W) of the frames
    palette: bytes


def load_objects(spec) -> VideoObjects:
    """Read and check the annotations of a video (``spec``: a readers.VideoSpec): sizes, ids, listed
    objects. An annotation gives the objects it introduces; the other objects' pixels in it are not used."""
    frames = spec.frames
    size = frames.size(0)
    ids, given, new_ids = ObjectIds(), {}, {}
    for t in sorted(spec.annotation_paths):
        path = spec.annotation_paths[t]
        labels = load_annotation(path)
        if spec.merge_objects:
            labels = (labels > 0).astype(np.uint8)
        frame_size = frames.size(t)
        if labels.shape != frame_size or frame_size != size:
            raise SequenceError(f"{path}: annotation is {labels.shape[1]}x{labels.shape[0]} (WxH) but frame "
                                f"{frames.where(t)} is {frame_size[1]}x{frame_size[0]} and the video "
                                f"{size[1]}x{size[0]}")
        new = ids.introduce(t, labels)
        if not ids:
            raise SequenceError(f"{path}: first annotation has no object (every pixel is 0)")
        if new:
            given[t] = given_labels(labels, new)
            new_ids[t] = new
    for obj_id, t in sorted(spec.listed_objects.items()):
        if ids.introduced.get(obj_id, len(frames)) > t:
            path = spec.annotation_paths.get(t, frames.where(t))
            raise SequenceError(f"{path}: label id {obj_id} is not present, but object {obj_id} is listed "
                                f"from frame {frames.name(t)} on")
    first_path = spec.annotation_paths[min(spec.annotation_paths)]
    palette = DAVIS_PALETTE if spec.merge_objects else load_palette(first_path)
    return VideoObjects(given, new_ids, *ids.arrays(), size, palette)
