"""The training data of each stage, assembled from the data roots.

Stage 0: static pseudo videos; 1: BL30K; 2 and 3: DAVIS 2017 train x5 +
YouTube-VOS train_480p. :func:`check_stage_data` is meant to run first so a
missing or empty root fails before a network is built.
"""
import os

from dataset import DatasetError
from dataset.seeding import EpochConcatDataset
from dataset.static_dataset import STATIC_MIX, find_image_mask_pairs, static_mix_folders, static_stage_datasets
from dataset.vos_dataset import VOSDataset, has_usable_video
from util.config import MAX_JUMP_SCHEDULE, STAGE_DEFAULTS, TRAIN_COMMON

_REPO_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ROOTS = {
    "static_root": os.path.join(_REPO_PARENT, "static"),
    "bl30k_root": os.path.join(_REPO_PARENT, "BL30K"),
    "davis_root": os.path.join(_REPO_PARENT, "DAVIS", "2017", "trainval"),
    "yv_root": os.path.join(_REPO_PARENT, "YouTube", "train_480p"),
}
YOUTUBE_ANNOTATION_STRIDE = 5  # YouTube-VOS annotates every 5th frame


def stage_kind(stage) -> str:
    """'static', 'bl30k' or 'main' (DAVIS + YouTube) for a training stage."""
    if stage not in STAGE_DEFAULTS:
        raise ValueError(f"unknown stage {stage!r} (known: {', '.join(map(str, STAGE_DEFAULTS))})")
    return STAGE_DEFAULTS[stage]["data"]


def max_jump_schedule(stage):
    """The MAX_JUMP_SCHEDULE name of a stage, or None for the static stage."""
    kind = stage_kind(stage)
    return kind if kind in MAX_JUMP_SCHEDULE else None


def _video_roots(stage, roots, youtube=True):
    """(label, image root, mask root, subset) of the VOS parts of a stage."""
    if stage_kind(stage) == "bl30k":
        root = roots["bl30k_root"]
        return [("BL30K", os.path.join(root, "JPEGImages"), os.path.join(root, "Annotations"), None)]
    davis, yv = roots["davis_root"], roots["yv_root"]
    parts = [("DAVIS", os.path.join(davis, "JPEGImages", "480p"), os.path.join(davis, "Annotations", "480p"),
              os.path.join(davis, "ImageSets", "2017", "train.txt"))]
    if youtube:
        parts.append(("YouTube-VOS", os.path.join(yv, "JPEGImages"), os.path.join(yv, "Annotations"), None))
    return parts


def _with_defaults(roots):
    unknown = set(roots or {}) - set(DEFAULT_ROOTS)
    if unknown:
        raise ValueError(f"unknown data root key(s): {', '.join(sorted(unknown))}")
    return {**DEFAULT_ROOTS, **{k: os.fspath(v) for k, v in (roots or {}).items() if v is not None}}


def check_stage_data(stage, roots=None, youtube=True):
    """Raise one DatasetError listing every missing or unusable root of ``stage``
    (``youtube=False``: stages 2/3 on DAVIS alone)."""
    roots = _with_defaults(roots)
    problems = []
    if stage_kind(stage) == "static":
        static_root = roots["static_root"]
        present, _ = static_mix_folders(static_root)
        if not present:
            problems.append(f"{static_root}: none of the static data folders exist (expected {', '.join(STATIC_MIX)})")
        for folder, _ in present:
            try:
                find_image_mask_pairs(folder)
            except DatasetError as error:
                problems.append(str(error))
    else:
        for label, image_root, mask_root, subset in _video_roots(stage, roots, youtube):
            missing = [p for p in (image_root, mask_root) if not os.path.isdir(p)]
            if subset is not None and not os.path.isfile(subset):
                missing.append(subset)
            if missing:
                problems += [f"{label}: {p} does not exist" for p in missing]
            elif not has_usable_video(image_root, mask_root, subset):
                problems.append(f"{label}: {image_root} has no usable video (need >= 3 frames with "
                                f".png annotations in {mask_root})")
    if problems:
        raise DatasetError(f"training data for stage {stage} is not usable:\n  " + "\n  ".join(problems))


def build_stage_dataset(stage, roots=None, crop_size=384, seed=0, max_jump=None, youtube=True):
    """(dataset, vos_datasets) of a stage.

    ``dataset`` has ``set_epoch``; ``vos_datasets`` are the parts whose
    ``set_max_jump`` the curriculum updates (empty for stage 0). ``max_jump``
    defaults to the first value of the stage's schedule. ``youtube=False``
    trains stages 2/3 on DAVIS alone (quick experiments); DAVIS is then not
    repeated, since the x5 only balances it against YouTube-VOS.
    """
    roots = _with_defaults(roots)
    if stage_kind(stage) == "static":
        return static_stage_datasets(roots["static_root"], crop_size=crop_size, seed=seed), []
    if max_jump is None:
        max_jump = MAX_JUMP_SCHEDULE[max_jump_schedule(stage)][0][1]
    if stage_kind(stage) == "bl30k":
        (_, image_root, mask_root, _), = _video_roots(stage, roots)
        bl30k = VOSDataset(image_root, mask_root, max_jump, is_bl30k=True, crop_size=crop_size, seed=seed)
        return bl30k, [bl30k]
    (_, davis_images, davis_masks, davis_subset), *rest = _video_roots(stage, roots, youtube)
    davis = VOSDataset(davis_images, davis_masks, max_jump, subset=davis_subset, crop_size=crop_size, seed=seed)
    if not youtube:
        return EpochConcatDataset([davis], seed=seed), [davis]
    (_, yv_images, yv_masks, _), = rest
    youtube_data = VOSDataset(yv_images, yv_masks, max_jump, crop_size=crop_size,
                              annotation_stride=YOUTUBE_ANNOTATION_STRIDE, seed=seed)
    parts = [davis] * TRAIN_COMMON["davis_repeat"] + [youtube_data]
    return EpochConcatDataset(parts, seed=seed), [davis, youtube_data]
