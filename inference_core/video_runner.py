"""Running the inference core over the videos of a dataset, with the I/O around it.

The core keeps the state of a video and runs its frame loop (``InferenceCore.run``);
this module feeds it: frames read, checked, resized and normalised on request,
the annotated objects with internal ids, then argmax back at the original size,
original ids, atomic palette PNGs guarded by the output manifest
(util/output_guard.py), and the per-run summary (failures, FPS, peak GPU memory).
Exit codes of every script: 0 all videos done, 1 some video failed, 2 the run could not start.
"""
import dataclasses
import os
import sys

import numpy as np
import progressbar
import torch
import torch.nn.functional as F

from inference_core import sharding
from inference_core.data import SequenceError
from inference_core.data.objects import load_objects
from util import output_guard
from util.config import IMAGENET_MEAN, IMAGENET_STD
from util.palette import save_palette_png

EXIT_OK, EXIT_FAILED, EXIT_SETUP = 0, 1, 2


def processing_size(size, shorter):
    """(H, W) to run the network at: ``size`` scaled down so its shorter side is ``shorter``."""
    height, width = size
    if shorter is None or shorter <= 0 or min(height, width) <= shorter:
        return size
    scale = shorter / min(height, width)
    return round(height * scale), round(width * scale)


def resize_image(x, size):
    """Float (C, H, W) scaled to ``size`` (h, w) as eval_generic.py scales frames (bilinear, antialiased)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True)[0]


def frame_tensor(image, size, device):
    """uint8 (H, W, 3) -> ImageNet-normalised float (3, h, w) on ``device``."""
    x = resize_image(torch.from_numpy(image).to(device).permute(2, 0, 1).float().div_(255), size)
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


class VideoFrames:
    """The frames of a video as the core reads them: decoded on request (``reader``: a
    frame source's reader, inference_core/data/frame_sources.py), checked against the video's size,
    resized to ``size`` and normalised on ``device``. Holds no frame."""

    def __init__(self, reader, frames, video_size, size, device):
        self.reader, self.frames, self.video_size, self.size, self.device = reader, frames, video_size, size, device

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, t):
        image = self.reader.read(t)
        if image.shape[:2] != self.video_size:
            raise SequenceError(f"{self.frames.where(t)}: frame is {image.shape[1]}x{image.shape[0]} (WxH) "
                                f"but the video is {self.video_size[1]}x{self.video_size[0]}")
        return frame_tensor(image, self.size, self.device)


def given_objects(objects, size, device):
    """{t: (internal-id mask at ``size``, new internal ids)} of the frames where objects are given."""
    return {t: (mask_tensor(objects.to_internal[objects.given[t]], size, device),
                [int(objects.to_internal[i]) for i in objects.new_ids[t]]) for t in objects.given}


def output_labels(prob, t, objects):
    """Original-id labels (H, W) of a frame's probabilities at the video's size; where objects
    are given, the given pixels exactly (processing at a smaller size would blur them)."""
    if tuple(prob.shape[-2:]) != tuple(objects.size):
        prob = F.interpolate(prob[None], size=objects.size, mode="bilinear", align_corners=False)[0]
    labels = objects.to_original[prob.argmax(0).cpu().numpy()]
    if t in objects.given:
        given = objects.given[t]
        labels[np.isin(labels, objects.new_ids[t])] = 0
        labels = np.where(given > 0, given, labels)
    return labels


def run_video(core, spec, out_dir, shorter_side=-1):
    """Segment one video and write its palette PNGs to ``out_dir``.

    Frames that are neither outputs nor memorised (sparse outputs, as
    YouTube-VOS valid) are not read nor run through the network, as in the
    reference; this does not change any output. Returns frames, processed
    frames and the seconds spent in ``core.step``.
    """
    objects = load_objects(spec)
    size = processing_size(objects.size, shorter_side)
    outputs = spec.output_names()
    with spec.frames.reader() as reader:
        frames = VideoFrames(reader, spec.frames, objects.size, size, core.device)
        seconds = 0.0
        # timed: the FPS the scripts print is network time (device synchronised per frame).
        for result in core.run(frames, given_objects(objects, size, core.device), outputs=set(outputs), timed=True):
            seconds += result.seconds
            if result.output:
                save_palette_png(os.path.join(out_dir, outputs[result.index]),
                                 output_labels(result.prob, result.index, objects), objects.palette)
    return VideoResult(len(spec.frames), seconds, core.processed)


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
