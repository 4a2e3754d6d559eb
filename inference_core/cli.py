"""What every evaluation script shares: its flags, building the core from them
(``core_from_args``: inference_core/build.py), and the run-and-report skeleton
(``run_evaluation``), so the scripts stay thin.

The memory and sampler flags are generated from ``InferenceConfig``'s fields
(util/config.py: ``--top_k`` / the reference's ``--top``, ``--mem_every``, ...), with
the benchmark's preset as defaults; the config validates them once.
"""
import sys

from inference_core import sharding
from inference_core.build import build_core
from inference_core.data import SequenceError
from inference_core.video_runner import EXIT_SETUP, run_videos
from model.checkpoint import CheckpointError
from util.config import PRESETS, PROCESSING_SIZE, add_config_arguments, config_from_args
from util.output_guard import refuse_overlap

# What opening a dataset reader or building the core raises for bad input: the scripts exit with EXIT_SETUP.
SETUP_ERRORS = (SequenceError, CheckpointError, ValueError, RuntimeError)


def add_inference_arguments(parser, benchmark):
    """The flags every evaluation script has; memory/sampler defaults from PRESETS[benchmark]."""
    parser.add_argument("--model", required=True, help="network weights (state dict or training checkpoint)")
    parser.add_argument("--output", required=True, help="folder for the result masks")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    parser.add_argument("--size", type=int, default=PROCESSING_SIZE[benchmark],
                        help="process frames scaled down to this shorter side (-1: original size); "
                             "results are written at the original size (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="redo videos whose results already exist")
    speed = parser.add_argument_group("speed (the same results to float rounding; docs/speed.md)")
    speed.add_argument("--no_channels_last", action="store_true",
                       help="keep the convolutions in NCHW layout (default: channels-last, faster on CPU)")
    backend = parser.add_argument_group("backend (docs/deployment.md)")
    backend.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                         help="what runs the network: PyTorch, or ONNX Runtime with the graphs of --onnx "
                              "(default: %(default)s)")
    backend.add_argument("--onnx", metavar="DIR", help="with --backend onnxruntime: the graphs of --model "
                                                       "written by scripts/export_onnx.py")
    add_config_arguments(parser, PRESETS[benchmark])


def core_from_args(args):
    """``build_core`` with the flags of ``add_inference_arguments``."""
    return build_core(args.model, config_from_args(args), args.device, channels_last=not args.no_channels_last,
                      backend=args.backend, onnx=args.onnx)


def run_evaluation(args, open_dataset, out_dir_of, after_video=None, finish=None):
    """The evaluation scripts' skeleton; returns the exit code.

    Joins torchrun's processes (inference_core/sharding.py), opens the dataset
    (``open_dataset()``), refuses an ``--output`` that overlaps its inputs, builds the
    core, runs this process's videos into ``out_dir_of(name)`` and, on rank 0, reports
    and calls ``finish(summary, dataset)`` (scoring, the YouTube-VOS zip), whose exit
    code counts too. Bad input before the first video: one line, EXIT_SETUP.
    """
    try:
        shard = sharding.join(args)
        dataset = open_dataset()
        refuse_overlap(args.output, dataset.input_folders())
        core = core_from_args(args)
    except SETUP_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    try:
        summary = run_videos(dataset, core, out_dir_of, args.size, args.overwrite, after_video=after_video,
                             shard=shard)
    finally:
        sharding.leave(shard)
    if not shard.is_main:
        return summary.exit_code()
    code = summary.report(core.device)
    if finish is not None:
        code = max(code, finish(summary, dataset))
    return code
