"""The training data of each stage, assembled from the data roots.

Stage 0: static pseudo videos; 1: BL30K; 2 and 3: DAVIS 2017 train x5 +
YouTube-VOS train, both restricted by default to the reference's training
lists (``dataset/subsets/``, byte-identical copies of the reference's files).
:func:`check_stage_data` is meant to run first so a missing or empty root, or
a subset list that keeps no video, fails before a network is built.
"""
import os

from dataset import DatasetError
from dataset.seeding import EpochConcatDataset
from dataset.static_dataset import STATIC_MIX, find_image_mask_pairs, static_mix_folders, static_stage_datasets
from dataset.vos_dataset import FRAME_SAMPLING, VOSDataset, has_usable_video, read_subset
from util.config import MAX_JUMP_SCHEDULE, STAGE_DEFAULTS, TRAIN_COMMON

_REPO_PARENT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ROOTS = {
    "static_root": os.path.join(_REPO_PARENT, "static"),
    "bl30k_root": os.path.join(_REPO_PARENT, "BL30K"),
    "davis_root": os.path.join(_REPO_PARENT, "DAVIS", "2017", "trainval"),
    # The reference reads the full-resolution train folder (STCN: train_480p, which
    # scripts/resize_youtube.py builds; pass it with --yv_root to train on it).
    "yv_root": os.path.join(_REPO_PARENT, "YouTube", "train"),
}
YOUTUBE_ANNOTATION_STRIDE = 5  # YouTube-VOS annotates every 5th frame

SUBSET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "subsets")
# The reference's training lists, per part of the main data: a path, or None for no list
# (DAVIS then falls back to the data's own ImageSets/2017/train.txt; YouTube-VOS uses every video).
DEFAULT_SUBSETS = {"davis": os.path.join(SUBSET_DIR, "davis_subset.txt"),
                   "youtube": os.path.join(SUBSET_DIR, "yv_subset.txt")}
NO_SUBSETS = {"davis": None, "youtube": None}


def resolve_subsets(no_subset=False, davis_subset=None, yv_subset=None):
    """The subsets of train.py's flags: the reference's lists unless ``no_subset``;
    an explicit file replaces the list of its part either way."""
    subsets = dict(NO_SUBSETS if no_subset else DEFAULT_SUBSETS)
    for part, path in (("davis", davis_subset), ("youtube", yv_subset)):
        if path is not None:
            subsets[part] = os.fspath(path)
    return subsets


def data_options(args):
    """Keyword arguments of :func:`check_stage_data` / :func:`build_stage_dataset`
    from train.py's arguments (older saved arguments lack the flags: defaults)."""
    return {"subsets": resolve_subsets(getattr(args, "no_subset", False), getattr(args, "davis_subset", None),
                                       getattr(args, "yv_subset", None)),
            "frame_sampling": getattr(args, "frame_sampling", "reference")}


def _report(line):
    """Print a data summary once (on rank 0 of a multi-process launch)."""
    if line and os.environ.get("RANK", "0") in ("", "0"):
        print(line, flush=True)


def stage_kind(stage) -> str:
    """'static', 'bl30k' or 'main' (DAVIS + YouTube) for a training stage."""
    if stage not in STAGE_DEFAULTS:
        raise ValueError(f"unknown stage {stage!r} (known: {', '.join(map(str, STAGE_DEFAULTS))})")
    return STAGE_DEFAULTS[stage]["data"]


def max_jump_schedule(stage):
    """The MAX_JUMP_SCHEDULE name of a stage, or None for the static stage."""
    kind = stage_kind(stage)
    return kind if kind in MAX_JUMP_SCHEDULE else None


def _video_roots(stage, roots, youtube=True, subsets=None):
    """(label, image root, mask root, subset) of the VOS parts of a stage."""
    if stage_kind(stage) == "bl30k":
        root = roots["bl30k_root"]
        return [("BL30K", os.path.join(root, "JPEGImages"), os.path.join(root, "Annotations"), None)]
    subsets = DEFAULT_SUBSETS if subsets is None else {**NO_SUBSETS, **subsets}
    davis, yv = roots["davis_root"], roots["yv_root"]
    davis_subset = subsets["davis"] or os.path.join(davis, "ImageSets", "2017", "train.txt")
    parts = [("DAVIS", os.path.join(davis, "JPEGImages", "480p"), os.path.join(davis, "Annotations", "480p"),
              davis_subset)]
    if youtube:
        parts.append(("YouTube-VOS", os.path.join(yv, "JPEGImages"), os.path.join(yv, "Annotations"),
                      subsets["youtube"]))
    return parts


def _subset_problem(label, image_root, subset):
    """A message when no video folder of ``image_root`` is listed in ``subset``, else None."""
    try:
        wanted = read_subset(subset)
    except DatasetError as error:
        return f"{label}: {error}"
    names = [n for n in os.listdir(image_root) if os.path.isdir(os.path.join(image_root, n))]
    if names and not wanted.intersection(names):
        return (f"{label}: none of the {len(names)} videos in {image_root} is listed in {subset}, so every "
                f"video would be skipped (for data of your own use --no_subset, or --davis_subset / "
                f"--yv_subset FILE)")
    return None


def _with_defaults(roots):
    unknown = set(roots or {}) - set(DEFAULT_ROOTS)
    if unknown:
        raise ValueError(f"unknown data root key(s): {', '.join(sorted(unknown))}")
    return {**DEFAULT_ROOTS, **{k: os.fspath(v) for k, v in (roots or {}).items() if v is not None}}


def check_stage_data(stage, roots=None, youtube=True, subsets=None, frame_sampling="reference"):
    """Raise one DatasetError listing every missing or unusable root of ``stage``
    (``youtube=False``: stages 2/3 on DAVIS alone; ``subsets``: as in
    :func:`build_stage_dataset`)."""
    if frame_sampling not in FRAME_SAMPLING:
        raise ValueError(f"frame_sampling must be one of {', '.join(FRAME_SAMPLING)}, got {frame_sampling!r}")
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
        for label, image_root, mask_root, subset in _video_roots(stage, roots, youtube, subsets):
            missing = [p for p in (image_root, mask_root) if not os.path.isdir(p)]
            if subset is not None and not os.path.isfile(subset):
                missing.append(subset)
            if missing:
                problems += [f"{label}: {p} does not exist" for p in missing]
            elif subset is not None and _subset_problem(label, image_root, subset):
                problems.append(_subset_problem(label, image_root, subset))
            elif not has_usable_video(image_root, mask_root, subset):
                problems.append(f"{label}: {image_root} has no usable video (need >= 3 frames with "
                                f".png annotations in {mask_root}" + (f", listed in {subset})" if subset else ")"))
    if problems:
        raise DatasetError(f"training data for stage {stage} is not usable:\n  " + "\n  ".join(problems))


def build_stage_dataset(stage, roots=None, crop_size=384, seed=0, max_jump=None, youtube=True, subsets=None,
                        frame_sampling="reference"):
    """(dataset, vos_datasets) of a stage.

    ``dataset`` has ``set_epoch``; ``vos_datasets`` are the parts whose
    ``set_max_jump`` the curriculum updates (empty for stage 0). ``max_jump``
    defaults to the first value of the stage's schedule. ``youtube=False``
    trains stages 2/3 on DAVIS alone (quick experiments); DAVIS is then not
    repeated, since the x5 only balances it against YouTube-VOS. ``subsets``
    ({'davis': path or None, 'youtube': path or None}, default
    DEFAULT_SUBSETS) restricts the main data to listed videos; how many were
    kept and skipped is printed. ``frame_sampling``: 'reference' or 'uniform'.
    """
    roots = _with_defaults(roots)
    if stage_kind(stage) == "static":
        return static_stage_datasets(roots["static_root"], crop_size=crop_size, seed=seed), []
    if max_jump is None:
        max_jump = MAX_JUMP_SCHEDULE[max_jump_schedule(stage)][0][1]
    common = dict(crop_size=crop_size, seed=seed, frame_sampling=frame_sampling)
    if stage_kind(stage) == "bl30k":
        (label, image_root, mask_root, _), = _video_roots(stage, roots)
        bl30k = VOSDataset(image_root, mask_root, max_jump, is_bl30k=True, name=label, **common)
        return bl30k, [bl30k]
    (label, davis_images, davis_masks, davis_subset), *rest = _video_roots(stage, roots, youtube, subsets)
    davis = VOSDataset(davis_images, davis_masks, max_jump, subset=davis_subset, name=label, **common)
    _report(davis.selection_summary())
    if not youtube:
        return EpochConcatDataset([davis], seed=seed), [davis]
    (label, yv_images, yv_masks, yv_subset), = rest
    youtube_data = VOSDataset(yv_images, yv_masks, max_jump, subset=yv_subset, name=label,
                              annotation_stride=YOUTUBE_ANNOTATION_STRIDE, **common)
    _report(youtube_data.selection_summary())
    parts = [davis] * TRAIN_COMMON["davis_repeat"] + [youtube_data]
    return EpochConcatDataset(parts, seed=seed), [davis, youtube_data]
