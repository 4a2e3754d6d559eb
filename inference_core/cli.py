"""What every evaluation script shares: its flags, building the core, and the
run-and-report skeleton (``run_evaluation``), so the scripts stay thin.

The memory and sampler flags are generated from ``InferenceConfig``'s fields
(util/config.py: ``--top_k`` / the reference's ``--top``, ``--mem_every``, ...), with
the benchmark's preset as defaults; the config validates them once.
"""
import sys

import torch

from dataset.eval_datasets import SequenceError
from inference_core import sharding
from inference_core.core import InferenceCore
from inference_core.onnx_backend import onnx_backend
from inference_core.video_runner import EXIT_SETUP, run_videos
from model.checkpoint import CheckpointError, build_network
from util.config import PRESETS, PROCESSING_SIZE, add_config_arguments, config_from_args
from util.device import cpu_native, inference_dtype, pick_device, precision_name
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


def onnx_config(config):
    """``config`` for the ONNX Runtime backend, whose graphs compute in float32: ``auto`` runs
    float32 there; a reduced precision asked for by name is refused (ValueError)."""
    if config.precision in ("fp32", "auto"):
        return config.replace(precision="fp32")
    flag = "--amp" if config.precision == "amp" else f"--precision {config.precision}"
    raise ValueError(f"{flag} does not apply to --backend onnxruntime (its graphs compute in float32); "
                     f"use --precision fp32 or auto")


def build_core(model, config, device=None, channels_last=True, backend="torch", onnx=None):
    """Network (``model``: a checkpoint path), device and inference core for ``config``, in
    ``config.precision`` (fp32, bf16, fp16, auto, amp; errors: CheckpointError, ValueError,
    RuntimeError). ``backend`` "onnxruntime": the graphs in the folder ``onnx`` exported from
    ``model`` (float32, no speed layer; OnnxError)."""
    device = pick_device(device)
    if backend != "torch" or onnx is not None:
        return InferenceCore(*onnx_backend(onnx, model, onnx_config(config), device, backend))
    dtype = inference_dtype(config.precision, device)
    if device.type == "cpu" and dtype != torch.float32 and not cpu_native(dtype):
        print(f"note: this CPU has no native {precision_name(dtype)} (docs/speed.md); it is emulated, "
              f"slower than fp32")
    if config.offload_memory and device.type != "cuda":
        print(f"note: --offload_memory has no effect on {device.type}; the memory is already in host memory")
    network = build_network(model, device)
    if channels_last:  # oneDNN and CUDA's tensor cores prefer it; TorchBackend follows the weights
        network.to(memory_format=torch.channels_last)
    return InferenceCore(network, config, device)


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
