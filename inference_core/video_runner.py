"""The per-video loop shared by the evaluation scripts.

The inference core keeps the state of a video; this module does the I/O around
it: reading and normalising frames, optional resizing, giving the annotated
objects with internal ids, argmax back at the original size, original ids,
atomic palette PNGs, timing of the core and the per-run summary (failures,
FPS, peak GPU memory). Every script shares its flags and its exit codes:
0 all videos done, 1 some video failed, 2 the run could not start.
"""
import argparse
import contextlib
import dataclasses
import os
import sys
import time

import numpy as np
import progressbar
import torch
import torch.nn.functional as F

from dataset.eval_datasets import SequenceError, load_objects
from inference_core.core import InferenceConfig, InferenceCore
from model.checkpoint import CheckpointError, build_network
from util.config import EVAL_DEFAULTS, IMAGENET_MEAN, IMAGENET_STD
from util.device import amp_available, pick_device, synchronize
from util.palette import load_frame, save_palette_png

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
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only; ignored on CPU)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the memory sampler, restarted per video (default: %(default)s)")
    parser.add_argument("--sample_threshold", type=int, default=d["sample_threshold"],
                        help="sample the long-term memory when it holds more frames than this (default: %(default)s)")
    parser.add_argument("--sample_fraction", type=float, default=d["sample_fraction"],
                        help="fraction of the memory frames read when sampling (default: %(default)s)")
    parser.add_argument("--anchors", type=int, nargs="*", default=list(d["anchors"]),
                        help="memory frames always read when sampling, negative: from the end (default: %(default)s)")
    parser.add_argument("--size", type=int, default=size,
                        help="process frames scaled down to this shorter side (-1: original size); "
                             "results are written at the original size (default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="redo videos whose results already exist")


def build_core(args):
    """Network, device and inference core from the parsed flags (errors: CheckpointError, ValueError, RuntimeError)."""
    device = pick_device(args.device)
    if args.amp and not amp_available(device):
        print(f"note: --amp has no effect on {device.type}; running in float32")
    network = build_network(args.model, device)
    config = InferenceConfig(top_k=args.top, mem_every=args.mem_every, include_last=args.include_last,
                             sample_threshold=args.sample_threshold, sample_fraction=args.sample_fraction,
                             anchors=tuple(args.anchors), seed=args.seed, amp=args.amp)
    if config.mem_every < 1 or config.top_k < 1:
        raise ValueError(f"--mem_every and --top must be at least 1, got {config.mem_every} and {config.top_k}")
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
    return all(os.path.isfile(os.path.join(out_dir, name)) for name in spec.output_names().values())


@dataclasses.dataclass
class VideoResult:
    frames: int
    seconds: float


def run_video(core, spec, out_dir, shorter_side=-1):
    """Segment one video and write its palette PNGs to ``out_dir``.

    At the frames where objects are given, the given pixels are written exactly
    (processing at a smaller size would otherwise blur them). Returns the number
    of frames and the seconds spent in ``core.step``.
    """
    objects = load_objects(spec)
    device = core.device
    size = processing_size(objects.size, shorter_side)
    outputs = spec.output_names()
    num_frames = len(spec.frame_paths)

    def read(t):
        image = load_frame(spec.frame_paths[t])
        if image.shape[:2] != objects.size:
            raise SequenceError(f"{spec.frame_paths[t]}: frame is {image.shape[1]}x{image.shape[0]} (WxH) but "
                                f"the video is {objects.size[1]}x{objects.size[0]}")
        return frame_tensor(image, size, device)

    core.start_video()
    seconds = 0.0
    current = read(0)
    for t in range(num_frames):
        following = read(t + 1) if t + 1 < num_frames else None
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
        current = following
    return VideoResult(num_frames, seconds)


@dataclasses.dataclass
class RunSummary:
    done: list = dataclasses.field(default_factory=list)      # names processed now
    skipped: list = dataclasses.field(default_factory=list)   # names complete from an earlier run
    failures: list = dataclasses.field(default_factory=list)  # (name, message)
    frames: int = 0
    seconds: float = 0.0

    @property
    def complete(self):
        return self.done + self.skipped

    def report(self, device):
        """Print FPS, peak GPU memory and the failures; return the exit code."""
        if self.seconds > 0:
            print(f"Processed {len(self.done)} videos, {self.frames} frames in {self.seconds:.1f} s: "
                  f"{self.frames / self.seconds:.2f} FPS (network only, I/O excluded)")
        if self.skipped:
            print(f"Skipped {len(self.skipped)} videos already complete (--overwrite to redo them)")
        if device.type == "cuda":
            print(f"Peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
        if self.failures:
            print(f"FAILED {len(self.failures)} videos:")
            for name, message in self.failures:
                print(f"  {name}: {message}")
            return EXIT_FAILED
        return EXIT_OK


def _describe(error):
    if isinstance(error, (SequenceError, OSError, ValueError)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def run_videos(reader, core, out_dir_of, shorter_side=-1, overwrite=False, after_video=None):
    """Run every video of ``reader`` (a DavisSet, YouTubeSet, ...) into ``out_dir_of(name)``.

    Videos whose outputs all exist are skipped unless ``overwrite``. A video
    that fails is reported and the others go on. ``after_video(spec, out_dir)``
    runs after each complete video (e.g. to write an overlay).
    """
    summary = RunSummary()
    if core.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(core.device)
    # fd named here: progressbar's default is the sys.stderr of its import time.
    bar = progressbar.ProgressBar(max_value=len(reader.names), redirect_stdout=True, fd=sys.stderr)
    for name in bar(reader.names):
        out_dir = out_dir_of(name)
        try:
            spec = reader.video(name)
            if not overwrite and outputs_complete(spec, out_dir):
                summary.skipped.append(name)
                print(f"{name}: already complete, skipped")
            else:
                # Old results go first: a video that fails midway must not look complete later.
                for filename in spec.output_names().values():
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(os.path.join(out_dir, filename))
                result = run_video(core, spec, out_dir, shorter_side)
                summary.done.append(name)
                summary.frames += result.frames
                summary.seconds += result.seconds
                fps = result.frames / result.seconds if result.seconds > 0 else float("inf")
                print(f"{name}: {result.frames} frames, {fps:.2f} FPS")
            if after_video is not None:
                after_video(spec, out_dir)
        except Exception as error:  # one bad video must not stop the others
            message = _describe(error)
            summary.failures.append((name, message))
            print(f"{name}: FAILED: {message}")
    return summary
