"""Readers of the evaluation sets: DAVIS 2016/2017, YouTube-VOS and plain folders.

A reader lists its videos (``names``) and describes one on request
(``video(name)`` -> :class:`VideoSpec`), so a broken video raises its error
when it is processed and the other videos still run. :func:`load_objects`
reads and checks a video's annotations before any frame is segmented.
Every error is a :class:`SequenceError` (or util.palette.AnnotationError)
whose message names the file and what is wrong with it.
"""
import dataclasses
import json
import os

import numpy as np
from PIL import Image

from util.davis_metrics import SequenceError, frame_list_sequences
from util.palette import DAVIS_PALETTE, load_annotation, load_palette

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass
class VideoSpec:
    name: str
    frame_paths: list            # every frame of the video, in temporal order
    annotation_paths: dict       # frame index -> annotation PNG where objects are given
    saved_frames: list = None    # frame indices whose result is written (None: all)
    merge_objects: bool = False  # DAVIS 2016: every labelled pixel belongs to one object
    listed_objects: dict = dataclasses.field(default_factory=dict)  # id -> frame index it must be given at

    def output_names(self):
        """{frame index: output file name} of the frames to write."""
        indices = range(len(self.frame_paths)) if self.saved_frames is None else self.saved_frames
        return {t: stem(self.frame_paths[t]) + ".png" for t in indices}


@dataclasses.dataclass
class VideoObjects:
    """The objects of a video, read from its annotations.

    ``given[t]``: label map (original ids) of the objects first given at frame t,
    other pixels 0. Internal ids 1..K number the objects in order of appearance
    (by id within a frame); ``to_original[i]`` is the id of internal object i.
    """
    given: dict
    new_ids: dict
    to_original: np.ndarray
    to_internal: np.ndarray
    size: tuple                  # (H, W) of the frames
    palette: bytes


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


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


def read_list(path, what):
    if not os.path.isfile(path):
        raise SequenceError(f"{path}: {what} not found")
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def load_objects(spec: VideoSpec) -> VideoObjects:
    """Read and check the annotations of a video (sizes, ids, listed objects)."""
    size = image_size(spec.frame_paths[0])
    given, new_ids, introduced = {}, {}, {}  # introduced: original id -> frame index, in order
    for t in sorted(spec.annotation_paths):
        path = spec.annotation_paths[t]
        labels = load_annotation(path)
        if spec.merge_objects:
            labels = (labels > 0).astype(np.uint8)
        frame_size = image_size(spec.frame_paths[t])
        if labels.shape != frame_size or frame_size != size:
            raise SequenceError(f"{path}: annotation is {labels.shape[1]}x{labels.shape[0]} (WxH) but frame "
                                f"{spec.frame_paths[t]} is {frame_size[1]}x{frame_size[0]} and the video "
                                f"{size[1]}x{size[0]}")
        new = [int(i) for i in np.unique(labels) if i != 0 and i not in introduced]
        if not introduced and not new:
            raise SequenceError(f"{path}: first annotation has no object (every pixel is 0)")
        if new:
            given[t] = np.where(np.isin(labels, new), labels, 0).astype(np.uint8)
            new_ids[t] = new
            introduced.update((i, t) for i in new)
    for obj_id, t in sorted(spec.listed_objects.items()):
        if introduced.get(obj_id, len(spec.frame_paths)) > t:
            path = spec.annotation_paths.get(t, spec.frame_paths[t])
            raise SequenceError(f"{path}: label id {obj_id} is not present, but object {obj_id} is listed "
                                f"from frame {stem(spec.frame_paths[t])} on")
    to_original = np.array([0, *introduced], dtype=np.uint8)
    to_internal = np.zeros(256, dtype=np.int64)
    to_internal[to_original] = np.arange(len(to_original))
    first_path = spec.annotation_paths[min(spec.annotation_paths)]
    palette = DAVIS_PALETTE if spec.merge_objects else load_palette(first_path)
    return VideoObjects(given, new_ids, to_original, to_internal, size, palette)


# ----------------------------------------------------------------------------- DAVIS


class DavisSet:
    """DAVIS 2017 (trainval / test-dev) or 2016: ``root``/JPEGImages/480p/<seq>/ and
    ``root``/Annotations/480p/<seq>/; only the first frame's annotation is used."""

    def __init__(self, root, year="2017", split="val"):
        self.root, self.year, self.split = root, year, split
        self.merge_objects = year == "2016"
        self.names = self._sequence_names()

    def _sequence_names(self):
        if self.year == "2017":
            return read_list(os.path.join(self.root, "ImageSets", "2017", f"{self.split}.txt"), "sequence list")
        own = os.path.join(self.root, "ImageSets", "2016", f"{self.split}.txt")
        if os.path.isfile(own):
            return read_list(own, "sequence list")
        # Original DAVIS 2016 list: "/JPEGImages/480p/<seq>/00000.jpg /Annotations/480p/<seq>/00000.png"
        listing = os.path.join(self.root, "ImageSets", "480p", f"{self.split}.txt")
        return frame_list_sequences(read_list(listing, f"sequence list (looked for {own} too)"), listing)

    @property
    def has_ground_truth(self):
        return os.path.isdir(os.path.join(self.root, "Annotations", "480p")) and self.split == "val"

    def video(self, name):
        frames = list_frames(os.path.join(self.root, "JPEGImages", "480p", name))
        first = os.path.join(self.root, "Annotations", "480p", name, stem(frames[0]) + ".png")
        if not os.path.isfile(first):
            raise SequenceError(f"{first}: first-frame annotation not found")
        return VideoSpec(name, frames, {0: first}, merge_objects=self.merge_objects)


# ----------------------------------------------------------------------------- YouTube-VOS


class YouTubeSet:
    """YouTube-VOS valid/test: frames from all_frames/<split>_all_frames/JPEGImages
    when present (else <split>/JPEGImages), annotations and meta.json from <split>/.
    Only the frames listed in meta.json are written unless ``save_all``."""

    def __init__(self, root, split="valid", save_all=False):
        self.split_dir = os.path.join(root, split)
        image_dir = os.path.join(self.split_dir, "JPEGImages")
        all_frames = os.path.join(root, "all_frames", f"{split}_all_frames", "JPEGImages")
        self.frame_dir = all_frames if os.path.isdir(all_frames) else image_dir
        self.save_all = save_all
        self.meta_path = os.path.join(self.split_dir, "meta.json")
        try:
            with open(self.meta_path, encoding="utf-8") as f:
                self.meta = json.load(f)["videos"]
        except FileNotFoundError:
            raise SequenceError(f"{self.meta_path}: meta.json not found") from None
        except (ValueError, KeyError, TypeError) as error:
            raise SequenceError(f"{self.meta_path}: not a YouTube-VOS meta.json ({error})") from None
        if not os.path.isdir(image_dir):
            raise SequenceError(f"{image_dir}: video folder not found")
        self.names = sorted(d for d in os.listdir(image_dir) if os.path.isdir(os.path.join(image_dir, d)))

    def video(self, name):
        frames = list_frames(os.path.join(self.frame_dir, name))
        index = {stem(p): t for t, p in enumerate(frames)}
        objects = self.meta.get(name, {}).get("objects")
        if not objects:
            raise SequenceError(f"{self.meta_path}: no objects listed for video {name}")
        annotation_dir = os.path.join(self.split_dir, "Annotations", name)
        annotations = annotation_paths(annotation_dir, index)
        listed, scored = {}, set()
        for obj_id, entry in objects.items():
            listed_frames = entry.get("frames") or []
            missing = [f for f in listed_frames if f not in index]
            if missing or not listed_frames:
                raise SequenceError(f"{self.meta_path}: object {obj_id} of {name} lists no frames or frames missing "
                                    f"from {os.path.join(self.frame_dir, name)} ({missing[:5]})")
            first = index[min(listed_frames)]
            if first not in annotations:
                raise SequenceError(f"{os.path.join(annotation_dir, stem(frames[first]) + '.png')}: "
                                    f"annotation of object {obj_id} (its first listed frame) not found")
            listed[int(obj_id)] = first
            scored.update(index[f] for f in listed_frames)
        saved = None if self.save_all else sorted(scored)
        return VideoSpec(name, frames, annotations, saved_frames=saved, listed_objects=listed)


def annotation_paths(folder, frame_index):
    """{frame index: path} of the PNGs in ``folder``; each must name an existing frame."""
    if not os.path.isdir(folder):
        raise SequenceError(f"{folder}: annotation folder not found")
    paths = {}
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".png") or name.startswith("."):
            continue
        if stem(name) not in frame_index:
            raise SequenceError(f"{os.path.join(folder, name)}: annotation has no frame of the same name")
        paths[frame_index[stem(name)]] = os.path.join(folder, name)
    return paths


# ----------------------------------------------------------------------------- own videos


def folder_video(name, frame_dir, mask_dir):
    """A video from a folder of frames and a folder of palette PNGs named like the
    frames, given where objects first appear."""
    frames = list_frames(frame_dir)
    annotations = annotation_paths(mask_dir, {stem(p): t for t, p in enumerate(frames)})
    if not annotations:
        raise SequenceError(f"{mask_dir}: no annotation PNG; give one for the frame where the objects first appear")
    return VideoSpec(name, frames, annotations)


class FolderSet:
    """``root``/JPEGImages/<video>/ frames and ``root``/Annotations/<video>/ masks."""

    def __init__(self, root):
        self.root = root
        image_dir = os.path.join(root, "JPEGImages")
        if not os.path.isdir(image_dir):
            raise SequenceError(f"{image_dir}: folder of videos not found")
        self.names = sorted(d for d in os.listdir(image_dir) if os.path.isdir(os.path.join(image_dir, d)))
        if not self.names:
            raise SequenceError(f"{image_dir}: no video folders in it")

    def video(self, name):
        return folder_video(name, os.path.join(self.root, "JPEGImages", name),
                            os.path.join(self.root, "Annotations", name))


class SingleVideo:
    """One video given as a frame folder and a mask folder; named after the frame folder."""

    def __init__(self, frame_dir, mask_dir):
        self.frame_dir, self.mask_dir = frame_dir, mask_dir
        self.names = [os.path.basename(os.path.normpath(os.path.abspath(frame_dir)))]

    def video(self, name):
        return folder_video(name, self.frame_dir, self.mask_dir)
