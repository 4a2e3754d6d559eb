"""Stages 1-3 data: 3-frame samples from annotated videos (BL30K, DAVIS, YouTube-VOS),
with one or two target objects, as in the reference's (= STCN's) VOS training dataset.

Frame sampling (NOTES.md, "VOS sampling"): ``reference`` draws the exact law of
the reference (clipping can repeat a frame and the last frame is never drawn),
``uniform`` is this project's earlier law (gaps 1..jump, no repeats, every
frame reachable). Either way the triple is reversed with probability 0.5.
"""
import os
import warnings

import numpy as np
import torch
from PIL import Image

from dataset import DatasetError
from dataset.seeding import SeededDataset
from dataset.transforms import (apply_geometry, random_affine, random_colour_jitter, random_flip,
                                random_grayscale, random_resized_crop, to_normalised_tensor)
from util.fileio import load_frame
from util.palette import load_annotation

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
MAX_ATTEMPTS = 5  # frame picks tried for a sample whose first frame shows no object
FRAME_SAMPLING = ("reference", "uniform")

# BL30K object rule (pixels in the augmented crops): a label of the first frame counts if it
# has > BL30K_MIN px there and (> BL30K_LARGE px there, or < BL30K_SMALL px in every other frame).
BL30K_MIN, BL30K_LARGE, BL30K_SMALL = 10 * 10, 30 * 30, 20 * 20


def reference_frame_indices(num_available, jump, rng):
    """[start, f1, f2] by the reference's law (NOTES.md "VOS sampling"), before reversal:
    j = min(N, jump); start in 0..N-j; f1 = min(start + 1 + r1, N-j, N-1);
    f2 = min(f1 + 1 + r2, N - j//2, N-1); r1, r2 uniform in 0..j (inclusive)."""
    n = int(num_available)
    j = min(n, int(jump))
    start = int(rng.integers(0, n - j + 1))
    f1 = min(start + 1 + int(rng.integers(0, j + 1)), n - j, n - 1)
    f2 = min(f1 + 1 + int(rng.integers(0, j + 1)), n - j // 2, n - 1)
    return [start, f1, f2]


def uniform_frame_indices(num_available, jump, num_frames, rng):
    """``num_frames`` increasing indices with gaps uniform in 1..jump (fewer where
    the video is short), the start uniform over the positions that fit."""
    room = num_available - 1  # the largest span a sample can have
    gaps = []
    for i in range(num_frames - 1):
        # Leave at least 1 for each gap still to draw.
        largest = min(jump, room - sum(gaps) - (num_frames - 2 - i))
        gaps.append(int(rng.integers(1, largest + 1)))
    start = int(rng.integers(0, num_available - sum(gaps)))
    return [int(i) for i in np.cumsum([start] + gaps)]


def annotated_frames(image_dir, mask_dir):
    """Sorted image file names of a video that have a ``<stem>.png`` annotation."""
    masks = {os.path.splitext(n)[0] for n in os.listdir(mask_dir) if n.lower().endswith(".png")}
    return sorted(n for n in os.listdir(image_dir)
                  if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS and os.path.splitext(n)[0] in masks)


def read_subset(subset):
    """``subset`` as a set of names: a set/list as is, or a text file with one name per line."""
    if subset is None or isinstance(subset, (set, frozenset, list, tuple)):
        return None if subset is None else set(subset)
    try:
        with open(subset, encoding="utf-8") as f:
            return {line.strip() for line in f if line.strip()}
    except OSError as error:
        raise DatasetError(f"{subset}: cannot read the video subset list ({error.strerror})") from None


def check_video_roots(image_root, mask_root):
    for root, what in ((image_root, "image"), (mask_root, "annotation")):
        if not os.path.isdir(root):
            raise DatasetError(f"{root}: {what} root does not exist")


def abbreviated(names, limit=20):
    """The first ``limit`` names, comma-separated, and how many more there are."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def has_usable_video(image_root, mask_root, subset=None, num_frames=3) -> bool:
    """Whether at least one video (of ``subset``) has ``num_frames`` annotated frames;
    stops at the first, so it is cheap even for BL30K."""
    wanted = read_subset(subset)
    for name in sorted(os.listdir(image_root)):
        image_dir, mask_dir = os.path.join(image_root, name), os.path.join(mask_root, name)
        if (wanted is None or name in wanted) and os.path.isdir(image_dir) and os.path.isdir(mask_dir) \
                and len(annotated_frames(image_dir, mask_dir)) >= num_frames:
            return True
    return False


def bl30k_label_counts(masks, label) -> bool:
    """The reference's BL30K rule for one label of the first frame of ``masks`` (T, H, W)."""
    first = int((masks[0] == label).sum())
    if first <= BL30K_MIN:
        return False
    return first > BL30K_LARGE or all(int((m == label).sum()) < BL30K_SMALL for m in masks[1:])


def select_targets(masks, rng, is_bl30k):
    """(target, second) labels chosen among the objects of the first frame; None when
    absent. BL30K counts a label only if it has more than 10x10 pixels in the first
    frame and either more than 30x30 there or fewer than 20x20 in every other frame
    (a small object is kept only if it stays small)."""
    labels = [int(label) for label in np.unique(masks[0]) if label != 0]
    if is_bl30k:
        labels = [label for label in labels if bl30k_label_counts(masks, label)]
    if not labels:
        return None, None
    target = labels[int(rng.integers(len(labels)))]
    others = [label for label in labels if label != target]
    second = others[int(rng.integers(len(others)))] if others else None
    return target, second


class VOSDataset(SeededDataset):
    """One item per video: ``num_frames`` frames picked by ``frame_sampling``
    ('reference' or 'uniform', see the module docstring) among the annotated
    frames, reversed half of the time, augmented, with one target object and a
    second one when the first frame has two.

    ``annotation_stride``: frames between two annotated ones (5 for YouTube-VOS);
    the jump in annotated frames is ``max(1, max_jump // annotation_stride)``.
    ``subset``: names of the videos to use (a set, or a text file with one name a
    line); the others are skipped, and ``selection_summary()`` says how many.
    ``name``: what the sample ``info`` calls this dataset ('DAVIS', ...).

    Each sample's ``info`` records what was drawn: ``dataset``, ``video``,
    ``num_frames`` (annotated frames of the video), ``frames`` (indices into
    them, in the order used, after any reversal), ``frame_names``, ``max_jump``
    (the jump the law used, in those indices), ``objects`` (target and second
    label as in the annotation, 0 = none), ``num_objects`` and ``attempts``.
    """

    def __init__(self, image_root, mask_root, max_jump, is_bl30k=False, subset=None, num_frames=3,
                 crop_size=384, annotation_stride=1, seed=0, frame_sampling="reference", name=None):
        super().__init__(seed)
        self.image_root, self.mask_root = os.fspath(image_root), os.fspath(mask_root)
        self.is_bl30k = bool(is_bl30k)
        self.name = name or ("BL30K" if self.is_bl30k else os.path.basename(os.path.normpath(self.image_root)))
        self.num_frames = int(num_frames)
        self.crop_size = int(crop_size)
        self.annotation_stride = int(annotation_stride)
        if self.num_frames < 1 or self.annotation_stride < 1:
            raise ValueError("num_frames and annotation_stride must be >= 1")
        if frame_sampling not in FRAME_SAMPLING:
            raise ValueError(f"frame_sampling must be one of {', '.join(FRAME_SAMPLING)}, got {frame_sampling!r}")
        if frame_sampling == "reference" and self.num_frames != 3:
            raise ValueError(f"the reference frame sampling draws 3 frames, not {self.num_frames} "
                             "(use frame_sampling='uniform')")
        self.frame_sampling = frame_sampling
        self.set_max_jump(max_jump)

        check_video_roots(self.image_root, self.mask_root)
        names = sorted(n for n in os.listdir(self.image_root) if os.path.isdir(os.path.join(self.image_root, n)))
        names = self._apply_subset(names, subset)

        self.videos, self.frames, short = [], {}, []
        for name in names:
            mask_dir = os.path.join(self.mask_root, name)
            frames = annotated_frames(os.path.join(self.image_root, name), mask_dir) if os.path.isdir(mask_dir) else []
            if len(frames) < self.num_frames:
                short.append(name)
                continue
            self.videos.append(name)
            self.frames[name] = frames
        if short:
            warnings.warn(f"{self.image_root}: {len(short)} video(s) with fewer than {self.num_frames} "
                          f"annotated frames skipped: {abbreviated(short)}")
        if not self.videos:
            raise DatasetError(f"{self.image_root}: no usable video (need folders of >= {self.num_frames} "
                               f"frames with matching .png annotations in {self.mask_root})")

    def _apply_subset(self, names, subset):
        """The ``names`` listed in ``subset``; records what was kept and skipped."""
        self.selection = None
        wanted = read_subset(subset)
        if wanted is None:
            return names
        kept = [n for n in names if n in wanted]
        absent = sorted(wanted - set(names))
        if absent:
            warnings.warn(f"{self.image_root}: {len(absent)} video(s) of the subset not found: "
                          f"{abbreviated(absent)}")
        source = os.fspath(subset) if isinstance(subset, (str, os.PathLike)) else "the given subset"
        self.selection = {"source": source, "kept": len(kept), "skipped": len(names) - len(kept),
                          "absent": len(absent)}
        if names and not kept:
            raise DatasetError(f"{self.image_root}: none of its {len(names)} videos is listed in {source}")
        return kept

    def selection_summary(self):
        """One line on the subset filter ('' when no subset was given)."""
        if self.selection is None:
            return ""
        s = self.selection
        absent = f"; {s['absent']} listed video(s) not found" if s["absent"] else ""
        return (f"{self.name}: {s['kept']} video(s) kept, {s['skipped']} skipped (not listed in "
                f"{s['source']}){absent}")

    def set_max_jump(self, max_jump):
        if int(max_jump) != max_jump or max_jump < 1:
            raise ValueError(f"max_jump must be a positive integer, got {max_jump}")
        self.max_jump = int(max_jump)

    @property
    def jump(self):
        """The jump in annotated frames (indices of a video's frame list)."""
        return max(1, self.max_jump // self.annotation_stride)

    def __len__(self):
        return len(self.videos)

    def pick_frames(self, num_available, rng):
        """Indices into a video's ``num_available`` annotated frames by ``frame_sampling``,
        then reversed with probability 0.5."""
        if self.frame_sampling == "reference":
            indices = reference_frame_indices(num_available, self.jump, rng)
        else:
            indices = uniform_frame_indices(num_available, self.jump, self.num_frames, rng)
        return indices[::-1] if rng.random() < 0.5 else indices

    def load_pair(self, video, frame):
        image_path = os.path.join(self.image_root, video, frame)
        mask_path = os.path.join(self.mask_root, video, os.path.splitext(frame)[0] + ".png")
        image, labels = load_frame(image_path), load_annotation(mask_path)
        if labels.shape != image.shape[:2]:
            raise DatasetError(f"{mask_path}: annotation is {labels.shape[1]}x{labels.shape[0]} but "
                               f"its frame {image_path} is {image.shape[1]}x{image.shape[0]}")
        return Image.fromarray(image), Image.fromarray(labels, mode="L")

    def augmented_frames(self, video, names, rng):
        """Normalised frames (T, 3, S, S) and label maps (T, S, S) of one attempt."""
        pairs = [self.load_pair(video, name) for name in names]
        size = (pairs[0][0].height, pairs[0][0].width)
        scale = (0.25, 1.0) if self.is_bl30k else (0.36, 1.0)
        sequence_geometry = [random_flip(rng), random_resized_crop(rng, size, self.crop_size, scale)]
        sequence_colour = [random_colour_jitter(rng, 0.1, 0.03, 0.03), random_grayscale(rng, 0.05)]
        images, masks = [], []
        for name, (image, mask) in zip(names, pairs):
            if (image.height, image.width) != size:
                raise DatasetError(f"{os.path.join(self.image_root, video, name)}: frame is "
                                   f"{image.width}x{image.height}, {names[0]} is {size[1]}x{size[0]}")
            image, mask = apply_geometry(sequence_geometry, image, mask)
            for op in sequence_colour:
                image = op.image(image)
            # Per frame (BL30K included, as in the reference): small motion and slight colour change.
            image, mask = apply_geometry([random_affine(rng, 15, shear=10)], image, mask)
            image = random_colour_jitter(rng, 0.01, 0.01, 0.01).image(image)
            images.append(to_normalised_tensor(image))
            masks.append(np.array(mask))
        return torch.stack(images), np.stack(masks)

    def make_sample(self, index, rng):
        video = self.videos[index]
        frames = self.frames[video]
        for attempt in range(1, MAX_ATTEMPTS + 1):
            indices = self.pick_frames(len(frames), rng)
            names = [frames[i] for i in indices]
            images, masks = self.augmented_frames(video, names, rng)
            target, second = select_targets(masks, rng, self.is_bl30k)
            if target is not None:
                break
        # After MAX_ATTEMPTS empty picks the sample has no object (all-zero masks), as in the reference.
        gt = torch.from_numpy(masks == target if target is not None else np.zeros_like(masks, bool))
        sec_gt = torch.from_numpy(masks == second if second is not None else np.zeros_like(masks, bool))
        cls_gt = gt.long() + 2 * sec_gt.long()
        return {
            "rgb": images,
            "gt": gt.unsqueeze(1).float(),
            "sec_gt": sec_gt.unsqueeze(1).float(),
            "cls_gt": cls_gt,
            "selector": torch.tensor([1.0, 1.0 if second is not None else 0.0]),
            "info": {"dataset": self.name, "video": video, "num_frames": len(frames), "frames": indices,
                     "frame_names": names, "max_jump": self.jump, "objects": [target or 0, second or 0],
                     "num_objects": (target is not None) + (second is not None), "attempts": attempt},
        }
