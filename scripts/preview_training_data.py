"""Preview the training data of a stage: what the network will see, and a record
of what was drawn, to check the recipe.

    python scripts/preview_training_data.py --stage 3 [--davis_root ... --yv_root ...] \
        [--samples 16] [--seed 0] [--max_jump J] [--output training_preview]

Takes the data flags of train.py (data roots, --main_data, --crop_size,
--frame_sampling, --no_subset, --davis_subset, --yv_subset) and builds the
stage's dataset exactly as train.py does. Writes

* ``DIR/samples.jsonl``: one JSON object per sample with ``dataset``, ``video``,
  ``num_frames`` (annotated frames of the video; 1 for a static image),
  ``frames`` (indices into the video's annotated frames, in the order used,
  after any reversal), ``max_jump`` (the jump the sampling law used, in those
  indices: YouTube-VOS's is the curriculum value // 5; null for static images)
  and ``objects`` (the chosen label ids, as in the annotation: target first);
* ``DIR/grid_NNN.png``: up to 8 samples per image, one row each, the 3 frames
  with their target masks overlaid (red: target, green: second object).

``--max_jump`` overrides the curriculum (default: its first value, 5).
Exit status 0, or 1 with a message when the data cannot be used.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dataset import DatasetError  # noqa: E402
from dataset.training_data import DEFAULT_ROOTS, build_stage_dataset, check_stage_data, data_options  # noqa: E402
from training.args import add_data_arguments, positive_int  # noqa: E402
from util.config import IMAGENET_MEAN, IMAGENET_STD, STAGE_DEFAULTS  # noqa: E402
from util.overlay import blend  # noqa: E402

PER_GRID = 8


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", type=int, required=True, choices=sorted(STAGE_DEFAULTS))
    add_data_arguments(parser)
    parser.add_argument("--samples", type=positive_int, default=16, help="samples to draw (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="the data seed (as train.py's --seed) and the pick "
                                                            "of samples")
    parser.add_argument("--max_jump", type=positive_int, help="stages 1-3: override the max_jump curriculum")
    parser.add_argument("--output", default="training_preview", help="folder for samples.jsonl and the grids")
    return parser.parse_args(argv)


def picked_samples(dataset, count, seed):
    """(epoch, index) of ``count`` samples: a seeded permutation of each epoch in turn."""
    rng = np.random.default_rng(seed)
    picks, epoch = [], 0
    while len(picks) < count:
        picks += [(epoch, int(i)) for i in rng.permutation(len(dataset))[:count - len(picks)]]
        epoch += 1
    return picks


def record(info, static):
    """The samples.jsonl object of a sample's ``info``."""
    return {"dataset": info["dataset"], "video": info["video"], "num_frames": int(info["num_frames"]),
            "frames": [int(i) for i in info["frames"]], "max_jump": None if static else int(info["max_jump"]),
            "objects": [int(label) for label in info["objects"] if label]}


def overlay_row(sample):
    """The frames of a sample side by side (uint8 H x 3W x 3), target masks overlaid."""
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    tiles = []
    for rgb, labels in zip(sample["rgb"], sample["cls_gt"]):
        image = ((rgb * std + mean).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        tiles.append(blend(image, labels.numpy().astype(np.uint8)))
        tiles.append(np.full((image.shape[0], 2, 3), 255, np.uint8))
    return np.concatenate(tiles[:-1], axis=1)


def write_grid(path, rows):
    gap = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    image = np.concatenate([part for row in rows for part in (row, gap)][:-1], axis=0)
    Image.fromarray(image).save(path)


def main(argv=None):
    args = parse_args(argv)
    roots = {name: getattr(args, name) for name in DEFAULT_ROOTS}
    static = STAGE_DEFAULTS[args.stage]["data"] == "static"
    youtube = not (STAGE_DEFAULTS[args.stage]["data"] == "main" and args.main_data == "davis")
    try:
        check_stage_data(args.stage, roots, youtube=youtube, **data_options(args))
        dataset, _ = build_stage_dataset(args.stage, roots, crop_size=args.crop_size, seed=args.seed,
                                         max_jump=args.max_jump, youtube=youtube, **data_options(args))
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        os.makedirs(args.output, exist_ok=True)
    except OSError as error:
        print(f"error: {args.output}: cannot create the output folder ({error.strerror})", file=sys.stderr)
        return 1

    jsonl_path = os.path.join(args.output, "samples.jsonl")
    rows, grids = [], []
    with open(jsonl_path, "w", encoding="utf-8") as jsonl:
        for epoch, index in picked_samples(dataset, args.samples, args.seed):
            dataset.set_epoch(epoch)
            try:
                sample = dataset[index]
            except DatasetError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            jsonl.write(json.dumps(record(sample["info"], static)) + "\n")
            rows.append(overlay_row(sample))
            if len(rows) == PER_GRID:
                grids.append(rows)
                rows = []
    if rows:
        grids.append(rows)
    for number, grid in enumerate(grids):
        write_grid(os.path.join(args.output, f"grid_{number:03d}.png"), grid)
    print(f"{args.samples} sample(s) of stage {args.stage} ({len(dataset)} per epoch): {jsonl_path} and "
          f"{len(grids)} grid(s) in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
