"""Command line of train.py: stage defaults from util.config, each one a flag.

Flags left unset (None) are filled from ``STAGE_DEFAULTS[stage]`` and
``TRAIN_COMMON`` by :func:`parse_train_args`, so the namespace it returns is
complete and is stored as-is in full checkpoints.
"""
import argparse
import os

from dataset.training_data import DEFAULT_ROOTS  # the reference's layout beside the repository
from dataset.vos_dataset import FRAME_SAMPLING
from util.config import STAGE_DEFAULTS, TRAIN_COMMON

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DEBUG_LOG_EVERY = 1
DEBUG_IMAGE_EVERY = 20

# A resumed run must keep these as saved, or it would not continue the same run.
SCHEDULE_ARGS = ("stage", "iterations", "steps", "lr", "batch_size", "seed", "crop_size", "key_backbone",
                 "main_data", "bootstrap_start", "bootstrap_end", "world_size", "train_bn", "frame_sampling",
                 "no_subset")


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_float(text):
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_data_arguments(parser):
    """The training-data flags (shared with scripts/preview_training_data.py); returns their group."""
    data = parser.add_argument_group("data")
    for name, path in DEFAULT_ROOTS.items():
        data.add_argument(f"--{name}", default=path, help=f"default: {path}")
    data.add_argument("--main_data", choices=("davis+youtube", "davis"), default="davis+youtube",
                      help="stages 2/3: DAVIS x5 with YouTube-VOS (paper), or DAVIS only (quick experiments)")
    data.add_argument("--crop_size", type=positive_int, default=TRAIN_COMMON["crop_size"])
    data.add_argument("--frame_sampling", choices=FRAME_SAMPLING, default=TRAIN_COMMON["frame_sampling"],
                      help="stages 1-3: the reference's law of the 3 frames (default; clipping repeats frames "
                           "and never draws the last one) or uniform gaps 1..max_jump")
    data.add_argument("--no_subset", action="store_true",
                      help="train on every DAVIS (ImageSets/2017/train.txt) and YouTube-VOS video instead of "
                           "the reference's lists in dataset/subsets/ (needed for data of your own)")
    data.add_argument("--davis_subset", metavar="FILE", help="DAVIS training videos, one name a line "
                                                              "(default: dataset/subsets/davis_subset.txt)")
    data.add_argument("--yv_subset", metavar="FILE", help="YouTube-VOS training videos, one name a line "
                                                           "(default: dataset/subsets/yv_subset.txt)")
    return data


def build_parser():
    parser = argparse.ArgumentParser(
        description="Train IMSFR: stage 0 (static images), 1 (BL30K), 2 (main data after BL30K), "
                    "3 (main data after stage 0). Stage defaults follow the paper (util/config.py).")
    parser.add_argument("--stage", type=int, required=True, choices=sorted(STAGE_DEFAULTS))
    parser.add_argument("--id", required=True, help="run name: saves are <save_dir>/<id>_*.pth, logs <log_dir>/<id>")

    schedule = parser.add_argument_group("schedule (default: the stage's values in util/config.py)")
    schedule.add_argument("--lr", type=_positive_float)
    schedule.add_argument("-b", "--batch_size", type=positive_int, help="per process")
    schedule.add_argument("-i", "--iterations", type=positive_int)
    schedule.add_argument("--steps", type=positive_int, nargs="+", help="iterations at which the lr drops x0.1")
    schedule.add_argument("--bootstrap_start", type=_non_negative_int, default=TRAIN_COMMON["bootstrap_start"],
                          help="plain cross-entropy before this iteration")
    schedule.add_argument("--bootstrap_end", type=_non_negative_int, default=TRAIN_COMMON["bootstrap_end"],
                          help="the hardest-pixel fraction reaches its final value here")
    schedule.add_argument("--seed", type=int, default=0)

    data = add_data_arguments(parser)
    data.add_argument("--num_workers", type=_non_negative_int, default=TRAIN_COMMON["num_workers"],
                      help="data-loading processes per training process")

    model = parser.add_argument_group("network and weights")
    model.add_argument("--key_backbone", choices=("resnet101", "resnet50", "resnet18"), default="resnet101")
    model.add_argument("--no_pretrained", action="store_true", help="no ImageNet weights for the encoders")
    model.add_argument("--train_bn", action="store_true",
                       help="let BatchNorm learn its statistics (training from scratch); "
                            "the reference keeps BatchNorm frozen")
    model.add_argument("--load_network", help="start from these network weights (stage-0 weights are "
                                              "upgraded to multi-object)")
    model.add_argument("--load_model", help="resume from a full checkpoint (<id>_checkpoint.pth)")

    run = parser.add_argument_group("device and run control")
    run.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    run.add_argument("--amp", dest="amp", action="store_const", const=True, default=None,
                     help="mixed precision (CUDA only; default on CUDA)")
    run.add_argument("--no_amp", dest="amp", action="store_const", const=False)
    run.add_argument("--stop_after", type=positive_int,
                     help="stop after this iteration with a full checkpoint, keeping the schedule of "
                          "--iterations (split a run into jobs; resume with --load_model)")

    output = parser.add_argument_group("saving and logging")
    output.add_argument("--save_dir", default="saves")
    output.add_argument("--log_dir", default="runs")
    output.add_argument("--save_every", type=positive_int, default=TRAIN_COMMON["save_checkpoint_interval"])
    output.add_argument("--log_every", type=positive_int, default=TRAIN_COMMON["log_text_interval"])
    output.add_argument("--image_every", type=positive_int, default=TRAIN_COMMON["log_image_interval"])
    output.add_argument("--debug", action="store_true",
                        help=f"log every iteration and images every {DEBUG_IMAGE_EVERY}")

    # torch.distributed.launch passes --local-rank=N (PyTorch 2.x) or --local_rank=N (older).
    parser.add_argument("--local-rank", "--local_rank", dest="local_rank", type=int, help=argparse.SUPPRESS)
    return parser


def parse_train_args(argv=None):
    """Parse ``argv`` and fill the stage defaults; argparse exits (status 2) on bad input."""
    parser = build_parser()
    args = parser.parse_args(argv)
    stage = STAGE_DEFAULTS[args.stage]
    for name in ("lr", "batch_size", "iterations", "steps"):
        if getattr(args, name) is None:
            setattr(args, name, list(stage[name]) if name == "steps" else stage[name])
    args.steps = sorted(args.steps)
    args.single_object = stage["single_object"]
    args.data = stage["data"]
    if args.bootstrap_end < args.bootstrap_start:
        parser.error(f"--bootstrap_end ({args.bootstrap_end}) is before --bootstrap_start ({args.bootstrap_start})")
    if args.load_network and args.load_model:
        parser.error("give either --load_network (weights, new schedule) or --load_model (resume), not both")
    if args.stop_after is not None and args.stop_after >= args.iterations:
        parser.error(f"--stop_after ({args.stop_after}) must be below --iterations ({args.iterations})")
    if args.debug:
        args.log_every, args.image_every = DEBUG_LOG_EVERY, DEBUG_IMAGE_EVERY
    return args
