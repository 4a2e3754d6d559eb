"""Stage 0 data: single images with a salient-object mask turned into 3-frame
pseudo videos by random warps (the reference's static pre-training).

The recipe (NOTES.md, "Training"): per sequence an affine zoom (0.8-1.5, image
and mask resampled by nearest neighbour, as torchvision's RandomAffine
default the reference relies on), a horizontal flip, colour jitter (0.1, 0.05,
0.05, hue 0.05) and 5 % grayscale; per frame an affine (20 deg, scale 0.9-1.1,
shear 10) that warps the image *and the mask* bicubically (the mask becomes
soft), a resize of the shorter side to the crop size (mask nearest) and a
random square crop, colour jitter (0.1, 0.05, 0.05), and with probability
0.33 a thin-plate-spline warp (12 points, N(0, 0.02^2)). ``gt`` is the soft
mask in [0, 1]; the class target ``cls_gt`` is ``gt > 0.5``.
"""
import os
import warnings

import numpy as np
import torch
from PIL import Image

from dataset import DatasetError
from dataset.seeding import SeededDataset
from dataset.transforms import (BICUBIC, NEAREST, apply_geometry, random_affine, random_colour_jitter,
                                random_flip, random_grayscale, random_resize_crop, random_tps, to_normalised_tensor)
from dataset.vos_dataset import abbreviated
from util.fileio import load_frame

IMAGE_EXTENSIONS = (".jpg", ".jpeg")
NUM_FRAMES = 3
TPS_PROBABILITY = 0.33   # per frame
TPS_POINTS, TPS_SIGMA = 12, 0.02

# The reference mix, folder name -> repeats (NOTES "Training"/"Data layouts").
STATIC_MIX = {"fss": 1, "DUTS-TR": 1, "DUTS-TE": 1, "ecssd": 1, "BIG_small": 5, "HRSOD_small": 5}


def _pairs_in(folder):
    """(image, mask) paths of ``folder``: every ``name.jpg`` with a ``name.png``."""
    pairs, unpaired = [], []
    for name in sorted(os.listdir(folder)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in IMAGE_EXTENSIONS:
            mask = os.path.join(folder, stem + ".png")
            (pairs.append((os.path.join(folder, name), mask)) if os.path.isfile(mask)
             else unpaired.append(name))
    return pairs, [os.path.join(folder, name) for name in unpaired]


def find_image_mask_pairs(root):
    """Image/mask pairs of a static root, flat (``root/name.jpg``) or FSS-style
    (``root/<class>/name.jpg``): the flat layout is used when ``root`` itself
    holds images."""
    if not os.path.isdir(root):
        raise DatasetError(f"{root}: static image folder does not exist")
    pairs, unpaired = _pairs_in(root)
    if not pairs and not unpaired:
        for sub in sorted(os.listdir(root)):
            if os.path.isdir(os.path.join(root, sub)):
                more_pairs, more_unpaired = _pairs_in(os.path.join(root, sub))
                pairs += more_pairs
                unpaired += more_unpaired
    if unpaired:
        warnings.warn(f"{root}: {len(unpaired)} image(s) without a .png mask skipped: {abbreviated(unpaired, 10)}")
    if not pairs:
        raise DatasetError(f"{root}: no image/mask pairs (expected name.jpg + name.png, "
                           "directly in the folder or in one level of class folders)")
    return pairs


def load_static_mask(path) -> np.ndarray:
    """A saliency mask as uint8 H x W in 0..255: palette / 1-bit masks as 255 where
    the label is > 0, float images scaled by 255, grayscale-like images as their
    8-bit gray values (the reference reads them with ``convert('L')``, so
    anti-aliased edges stay soft)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("P", "1"):
                return (np.array(image) > 0).astype(np.uint8) * 255
            if image.mode == "F":
                return np.clip(np.round(np.array(image) * 255), 0, 255).astype(np.uint8)
            return np.array(image.convert("L"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: mask file not found") from None
    except OSError as error:
        raise DatasetError(f"{path}: unreadable mask ({error})") from None


class StaticPseudoVideoDataset(SeededDataset):
    """Each item: one image/mask pair warped into a 3-frame pseudo video.

    ``roots_with_repeats``: folder paths or (folder, repeats) pairs; a folder
    repeated n times contributes each of its images n times per epoch.
    """

    def __init__(self, roots_with_repeats, crop_size=384, seed=0):
        super().__init__(seed)
        self.crop_size = int(crop_size)
        self.items, self.folder_names = [], []
        for entry in roots_with_repeats:
            root, repeats = (entry, 1) if isinstance(entry, (str, os.PathLike)) else entry
            if int(repeats) < 1:
                raise ValueError(f"{root}: repeats must be >= 1, got {repeats}")
            pairs = find_image_mask_pairs(os.fspath(root)) * int(repeats)
            self.items += pairs
            self.folder_names += [os.path.basename(os.path.normpath(os.fspath(root)))] * len(pairs)
        if not self.items:
            raise DatasetError("StaticPseudoVideoDataset: no static image folders given")

    def __len__(self):
        return len(self.items)

    def make_sample(self, index, rng):
        image_path, mask_path = self.items[index]
        image = Image.fromarray(load_frame(image_path))
        mask = load_static_mask(mask_path)
        if mask.shape != (image.height, image.width):
            raise DatasetError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image "
                               f"{image_path} is {image.width}x{image.height}")
        mask = Image.fromarray(mask, mode="L")

        # Shared by the 3 frames: zoom (nearest for the image too, as the reference), flip, colour.
        sequence_geometry = [random_affine(rng, 0, scale=(0.8, 1.5), image_mode=NEAREST), random_flip(rng)]
        sequence_colour = [random_colour_jitter(rng, 0.1, 0.05, 0.05, hue=0.05), random_grayscale(rng, 0.05)]
        base_image, base_mask = apply_geometry(sequence_geometry, image, mask)
        for op in sequence_colour:
            base_image = op.image(base_image)

        frames, masks, warped = [], [], []
        size = (base_image.height, base_image.width)
        for _ in range(NUM_FRAMES):
            # Per frame: the motion between pseudo frames (mask warped bicubically: soft),
            # then a crop_size square (mask resized by nearest neighbour).
            geometry = [random_affine(rng, 20, scale=(0.9, 1.1), shear=10, mask_mode=BICUBIC),
                        random_resize_crop(rng, size, self.crop_size)]
            frame, frame_mask = apply_geometry(geometry, base_image, base_mask)
            frame = random_colour_jitter(rng, 0.1, 0.05, 0.05).image(frame)
            tps = rng.random() < TPS_PROBABILITY
            if tps:
                frame, frame_mask = apply_geometry(
                    [random_tps(rng, (self.crop_size, self.crop_size), TPS_POINTS, TPS_SIGMA)], frame, frame_mask)
            frames.append(to_normalised_tensor(frame))
            masks.append(torch.from_numpy(np.array(frame_mask, np.float32) / 255))
            warped.append(bool(tps))

        gt = torch.stack(masks).unsqueeze(1)  # soft, in [0, 1]
        return {
            "rgb": torch.stack(frames),
            "gt": gt,
            "sec_gt": torch.zeros_like(gt),
            "cls_gt": (gt[:, 0] > 0.5).long(),
            "selector": torch.tensor([1.0, 0.0]),
            "info": {"dataset": self.folder_names[index], "video": self.item_name(index),
                     "num_frames": 1, "frames": [0] * NUM_FRAMES,
                     "frame_names": [os.path.basename(image_path)] * NUM_FRAMES,
                     "max_jump": 0, "objects": [1, 0], "num_objects": 1, "attempts": 1, "tps": warped},
        }

    def item_name(self, index):
        """``<parent folder>/<image file>`` of an item (the class for FSS, the dataset otherwise)."""
        image_path = self.items[index][0]
        return os.path.relpath(image_path, os.path.dirname(os.path.dirname(image_path)))


def static_mix_folders(static_root):
    """([(folder, repeats)] of the STATIC_MIX folders under ``static_root``, [names missing])."""
    present, missing = [], []
    for name, repeats in STATIC_MIX.items():
        folder = os.path.join(static_root, name)
        if os.path.isdir(folder):
            present.append((folder, repeats))
        else:
            missing.append(name)
    return present, missing


def static_stage_datasets(static_root, crop_size=384, seed=0) -> StaticPseudoVideoDataset:
    """The reference stage-0 mix (STATIC_MIX) under ``static_root`` as one dataset.

    Missing folders are a warning naming them as long as at least one exists
    (so a partial download still trains, visibly); none at all is an error.
    """
    static_root = os.fspath(static_root)
    if not os.path.isdir(static_root):
        raise DatasetError(f"{static_root}: static data root does not exist "
                           f"(expected folders {', '.join(STATIC_MIX)})")
    present, missing = static_mix_folders(static_root)
    if not present:
        raise DatasetError(f"{static_root}: none of the static data folders exist "
                           f"(expected {', '.join(STATIC_MIX)})")
    if missing:
        warnings.warn(f"{static_root}: static data folder(s) missing, training without them: "
                      f"{', '.join(missing)}")
    return StaticPseudoVideoDataset(present, crop_size=crop_size, seed=seed)
