"""The per-video loop shared by the evaluation scripts.

The inference core keeps the state of a video; this module does the I/O around
it: reading and normalising frames, optional resizing, giving the annotated
objects with internal ids, argmax back at the original size, original ids,
atomic palette PNGs, timing of the core and the per-run summary (failures,
FPS, peak GPU memory). Every script shares its flags and its exit codes:
0 all videos done, 1 some video failed, 2 the run could not start.
"""
import argparse
import dataclasses
import os
import sys
import time

import numpy as np
import progressbar
import torch
import torch.nn.functional as F

from dataset.eval_datasets import SequenceError, load_objects
from inference_core import output_guard, sharding
from inference_core.core import InferenceConfig, InferenceCore
from model.checkpoint import CheckpointError, build_network
from util.config import EVAL_DEFAULTS, IMAGENET_MEAN, IMAGENET_STD, PROCEDURES
from util.device import inference_amp_available, pick_device, synchronize
from util.palette import save_palette_png

EXIT_OK, EXIT_FAILED, EXIT_SETUP = 0, 1, 2
# What opening a dataset reader or build_core raises for bad input: the scripts exit with EXIT_SETUP.
SETUP_ERRORS = (SequenceError, CheckpointError, ValueError, RuntimeError)


def add_inference_arguments(parser: argparse.ArgumentParser, benchmark, size=-1):
    """The flags every evaluation script has; sampler/memory defaults from EVAL_DEFAULTS[benchmark]."""
    d = EVAL_DEFAULTS[benchmark]
    parser.add_argument("--model", required=True, help="network weights (state dict or training checkpoint)")
    parser.add_argument("--output", required=True, help="folder for the result masks")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: CUDA if available)")
    parser.add_argument("--top", type=int, default=d["top_k"],
                        help="top-k of the long-term memory readout (default: %(default)s)")
    parser.add_argument("--mem_every", type=int, default=d["mem_every"],
                        help="memorise every N-th frame (default: %(default)s)")
    parser.add_argument("--include_last", action="store_true", help="also read the last frame (temporary memory)")
    parser.add_argument("--amp", action="store_true",
                        help="mixed precision: float16 on CUDA, bfloat16 on CPUs with native bfloat16 "
                             "(README, Speed; off by default)")
    parser.add_argument("--no_channels_last", action="store_true",
                        help="keep the convolutions in NCHW layout (default: channels-last, faster on CPU)")
    parser.add_argument("--no_winograd", action="store_true",
                        help="CPU: run the 3x3 convolutions by the direct algorithm (default: Winograd "
                             "F(4x4, 3x3) for those with 256+ channels, faster on CPU; README, Speed)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the memory sampler, restarted per video (default: %(default)s)")
    parser.add_argument("--sample_threshold", type=int, default=d["sample_threshold"],
                        help="sample the long-term memory when it holds more frames than this (default: %(default)s)")
    parser.add_argument("--sample_fraction", type=float, default=d["sample_fraction"],
                        help="fraction of the memory frames read when sampling (default: %(default)s)")
    parser.add_argument("--anchors", type=int, nargs="*", default=list(d["anchors"]),
                        help="memory frames always read when sampling, negative: from the end (default: %(default)s)")
    parser.add_argument("--procedure", choices=PROCEDURES, default=d["procedure"],
                        help="how memory is filled: 'davis' (one draw per frame, t %% mem_every == 0) or "
                             "'youtube' (one draw per object, schedule restarts where objects appear, "
                             "double aggregation there), as the reference's scripts (default: %(default)s)")
    parser.add_argument("--size", type=int, default=size,
                        help="process frames scaled down to this shorter side (-1: original size); "
                             "results are written at the original size (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="redo videos whose results already exist")
    parser.add_argument("--memory_budget", type=_budget, default=d.get("memory_budget"),
                        help="keep at most N long-term memory frames per memory bank: the sampler's anchors "
                             "plus a uniform reservoir sample of the older frames, so memory and time per frame "
                             "stay flat on long videos; 'none': every frame, as the reference (default: %(default)s)")
    parser.add_argument("--offload_memory", action="store_true",
                        help="CUDA: keep the long-term memory in pinned CPU memory and move only the frames read "
                             "to the GPU (no effect on CPU)")


def _budget(text):
    """--memory_budget: a positive frame count, or 'none' (unbounded)."""
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frame count or 'none', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a frame count or 'none', got {text!r}")
    return value


def build_core(args):
    """Network, device and inference core from the parsed flags (errors: CheckpointError, ValueError, RuntimeError)."""
    device = pick_device(args.device)
    if args.amp and not inference_amp_available(device):
        print(f"note: --amp has no effect on {device.type}; running in float32")
    offload = getattr(args, "offload_memory", False)
    if offload and device.type != "cuda":
        print(f"note: --offload_memory has no effect on {device.type}; the memory is already in host memory")
    network = build_network(args.model, device)
    if not getattr(args, "no_channels_last", False):
        network.to_channels_last()  # the same numbers to float rounding (tests/test_inference_speed_paths.py)
    # CPU float32 inference only; the same numbers to float rounding (tests/test_winograd.py).
    network.use_winograd(device.type == "cpu" and not getattr(args, "no_winograd", False))
    if args.mem_every < 1 or args.top < 1:
        raise ValueError(f"--mem_every and --top must be at least 1, got {args.mem_every} and {args.top}")
    config = InferenceConfig(top_k=args.top, mem_every=args.mem_every, include_last=args.include_last,
                             sample_threshold=args.sample_threshold, sample_fraction=args.sample_fraction,
                             anchors=tuple(args.anchors), procedure=args.procedure, seed=args.seed, amp=args.amp,
                             memory_budget=getattr(args, "memory_budget", None), offload_memory=offload)
    return InferenceCore(network, config, device)


def processing_size(size, shorter):
    """(H, W) to run the network at: ``size`` scaled down so its shorter side is ``shorter``."""
    height, width = size
    if shorter is None or shorter <= 0 or min(height, width) <= shorter:
        return size
    scale = shorter / min(height, width)
    return round(height * scale), round(width * scale)


def frame_tensor(image, size, device):
    """uint8 (H, W, 3) -> ImageNet-normalised float (3, h, w) on ``device``."""
    x = torch.from_numpy(image).to(device).permute(2, 0, 1).float().div_(255)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    return (x - mean) / std


def mask_tensor(internal, size, device):
    """Internal-id label map (H, W) -> int64 (h, w) on ``device`` (nearest neighbour)."""
    x = torch.from_numpy(internal).to(device)
    if tuple(x.shape) != tuple(size):
        x = F.interpolate(x[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()
    return x


def outputs_complete(spec, out_dir):
    """Done by an earlier run: its manifest is complete and lists every expected file, and they exist."""
    return output_guard.outputs_complete(out_dir, spec.output_names().values())


@dataclasses.dataclass
class VideoResult:
    frames: int
    seconds: float
    processed: int = 0  # frames run through the network (the others were not needed)


def run_video(core, spec, out_dir, shorter_side=-1):
    """Segment one video and write its palette PNGs to ``out_dir``.

    Frames that are neither outputs nor memorised (sparse outputs, as
    YouTube-VOS valid) are not read nor run through the network, as in the
    reference; this does not change any output. At the frames where objects
    are given, the given pixels are written exactly (processing at a smaller
    size would otherwise blur them). Returns frames, processed frames and the
    seconds spent in ``core.step``.
    """
    objects = load_objects(spec)
    device = core.device
    size = processing_size(objects.size, shorter_side)
    outputs = spec.output_names()
    num_frames = len(spec.frames)
    cache = {}  # frame index -> tensor; at most the current and the next frame

    def read(t):
        # Frames are requested in increasing order (a video file is decoded front to back).
        if t not in cache:
            image = frames.read(t)
            if image.shape[:2] != objects.size:
                raise SequenceError(f"{spec.frames.where(t)}: frame is {image.shape[1]}x{image.shape[0]} (WxH) "
                                    f"but the video is {objects.size[1]}x{objects.size[0]}")
            cache[t] = frame_tensor(image, size, device)
        return cache[t]

    with spec.frames.reader() as frames:
        core.start_video()
        seconds = 0.0
        for t in range(num_frames):
            for old in [i for i in cache if i < t]:
                del cache[old]
            last = t + 1 == num_frames
            if not core.will_process(output=t in outputs, new_objects=t in objects.given, last=last):
                core.skip()
                continue
            current, following = read(t), None if last else read(t + 1)
            mask, new = None, ()
            if t in objects.given:
                mask = mask_tensor(objects.to_internal[objects.given[t]], size, device)
                new = [int(objects.to_internal[i]) for i in objects.new_ids[t]]
            synchronize(device)
            start = time.perf_counter()
            prob = core.step(current, following, mask=mask, new_objects=new)
            synchronize(device)
            seconds += time.perf_counter() - start
            if t in outputs:
                if tuple(prob.shape[-2:]) != tuple(objects.size):
                    prob = F.interpolate(prob[None], size=objects.size, mode="bilinear", align_corners=False)[0]
                labels = objects.to_original[prob.argmax(0).cpu().numpy()]
                if t in objects.given:
                    given = objects.given[t]
                    labels[np.isin(labels, objects.new_ids[t])] = 0
                    labels = np.where(given > 0, given, labels)
                save_palette_png(os.path.join(out_dir, outputs[t]), labels, objects.palette)
    return VideoResult(num_frames, seconds, core.processed)


@dataclasses.dataclass
class RunSummary:
    done: list = dataclasses.field(default_factory=list)      # names processed now
    skipped: list = dataclasses.field(default_factory=list)   # names complete from an earlier run
    failures: list = dataclasses.field(default_factory=list)  # (name, message)
    frames: int = 0
    processed: int = 0   # frames run through the network
    seconds: float = 0.0
    peak_memory: int = None  # bytes of peak GPU memory, largest over the processes (None: this process's)
    processes: int = 1       # how many processes ran the videos (torchrun, inference_core/sharding.py)

    @property
    def complete(self):
        return self.done + self.skipped

    def exit_code(self):
        return EXIT_FAILED if self.failures else EXIT_OK

    def report(self, device):
        """Print FPS, peak GPU memory and the failures; return the exit code."""
        if self.seconds > 0:
            print(f"Processed {len(self.done)} videos, {self.frames} frames ({self.processed} through the "
                  f"network) in {self.seconds:.1f} s: {self.frames / self.seconds:.2f} FPS "
                  f"(frames per second of network time, I/O excluded"
                  f"{f'; per process, {self.processes} processes' if self.processes > 1 else ''})")
        if self.skipped:
            print(f"Skipped {len(self.skipped)} videos already complete (--overwrite to redo them)")
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) if self.peak_memory is None else self.peak_memory
            print(f"Peak GPU memory: {peak / 2**30:.2f} GiB{' (largest of the processes)' if self.processes > 1 else ''}")
        if self.failures:
            print(f"FAILED {len(self.failures)} videos:")
            for name, message in self.failures:
                print(f"  {name}: {message}")
        return self.exit_code()


def _describe(error):
    if isinstance(error, (SequenceError, OSError, ValueError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def run_videos(reader, core, out_dir_of, shorter_side=-1, overwrite=False, after_video=None, shard=sharding.SINGLE):
    """Run every video of ``reader`` (a DavisSet, YouTubeSet, ...) into ``out_dir_of(name)``.

    Videos done by an earlier run (see :func:`outputs_complete`) are skipped
    unless ``overwrite``. A video that fails is reported and the others go on.
    A result folder that overlaps the video's input folders, or holds a file
    with a result name that this tool did not write, fails the video and is
    left untouched (inference_core/output_guard.py). ``after_video(spec, out_dir)``
    runs after each complete video (e.g. to write an overlay).

    Under torchrun (``shard`` from sharding.join) this process runs its share of
    the videos, then waits for the others: every process returns the merged
    summary of all of them.
    """
    summary = RunSummary()
    if core.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(core.device)
    names = sharding.names_of(reader, shard)
    # fd named here: progressbar's default is the sys.stderr of its import time.
    bar = progressbar.ProgressBar(max_value=len(names), redirect_stdout=True, fd=sys.stderr) if shard.is_main \
        else (lambda items: items)
    for name in bar(names):
        out_dir = out_dir_of(name)
        try:
            spec = reader.video(name)
            if not overwrite and outputs_complete(spec, out_dir):
                summary.skipped.append(name)
                print(f"{name}: already complete, skipped")
            else:
                inputs = output_guard.video_input_folders(spec) if spec.inputs is None else spec.inputs
                output_guard.refuse_overlap(out_dir, inputs, f"result folder of {name}")
                # Old results (only those our manifest lists) go first: a video that fails midway must not
                # look complete later.
                expected = list(spec.output_names().values())
                output_guard.claim_outputs(out_dir, expected)
                result = run_video(core, spec, out_dir, shorter_side)
                output_guard.mark_complete(out_dir, expected)
                summary.done.append(name)
                summary.frames += result.frames
                summary.processed += result.processed
                summary.seconds += result.seconds
                fps = result.frames / result.seconds if result.seconds > 0 else float("inf")
                print(f"{name}: {result.frames} frames ({result.processed} processed), {fps:.2f} FPS")
            if after_video is not None:
                after_video(spec, out_dir)
        except Exception as error:  # one bad video must not stop the others
            message = _describe(error)
            summary.failures.append((name, message))
            print(f"{name}: FAILED: {message}")
    if shard.distributed and core.device.type == "cuda":
        summary.peak_memory = torch.cuda.max_memory_allocated(core.device)
    return sharding.gather_summary(summary, reader.names, shard)
