"""Memory and time of the interactive demo's session on a long video file.

Writes a synthetic mp4 of --frames frames (scripts/benchmark_long_video.py's SyntheticVideo:
two discs over a panning background, generated and encoded one frame at a time), opens it in
an ``interactive.session.Session`` with eval_generic.py's core and --memory_budget N, gives the
first frame's mask and propagates forward through the whole video (frames decoded, cached at
the working size on disk, masks written as PNGs, as in the demo). Prints the process's peak
resident size (RSS) at --check frames and at the end, its growth between them, and the time per
propagated frame (network time in ``InferenceCore.step``, and wall time with decoding and I/O).

    python scripts/benchmark_interactive.py --frames 2000 --memory_budget 20 [--check 500]

A benchmark (figures), not a test. The network is randomly initialised (ResNet-18 key encoder)
(--backbone, default ResNet-18) unless --model is given: memory and speed do not depend on the weights.
"""
import argparse
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from interactive.session import Session, load_core  # noqa: E402
from model.network import IMSFR  # noqa: E402
from scripts.benchmark_long_video import SyntheticVideo  # noqa: E402
from util.config import IMAGENET_MEAN, IMAGENET_STD, PRECISIONS  # noqa: E402

MIB = 2 ** 20


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def write_video(path, video, count, fps=25):
    """``count`` frames of ``video`` (normalised tensors) as an mp4, one frame in memory at a time."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (video.width, video.height))
    if not writer.isOpened():
        raise OSError(f"{path}: OpenCV cannot write mp4 here")
    for t in range(count):
        rgb = (video.frame(t) * std + mean).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    writer.release()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--check", type=int, default=500, help="frame count of the first memory reading")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--memory_budget", type=int, default=20)
    parser.add_argument("--model", help="weights (default: a random-init network with --backbone)")
    parser.add_argument("--backbone", default="resnet18", choices=["resnet18", "resnet50", "resnet101"],
                        help="key encoder of the random-init network (default: %(default)s; the paper's: resnet101)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="what the network computes in (the demo's default is auto; default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--workdir", default=None, help="video, frame cache and masks (default: a temporary folder)")
    args = parser.parse_args(argv)
    if not 1 <= args.check < args.frames:
        parser.error("--check must lie in 1..frames-1")
    if args.threads:
        torch.set_num_threads(args.threads)
    workdir = args.workdir or tempfile.mkdtemp(prefix="imsfr-bench-interactive-")
    os.makedirs(workdir, exist_ok=True)
    video = SyntheticVideo(args.height, args.width, objects=2)
    path = os.path.join(workdir, "long.mp4")
    start = time.perf_counter()
    write_video(path, video, args.frames)
    print(f"{path}: {args.frames} frames at {args.height}x{args.width} written in {time.perf_counter() - start:.0f} s",
          flush=True)
    model = args.model
    if model is None:
        torch.manual_seed(0)
        model = os.path.join(workdir, f"random_{args.backbone}.pth")
        torch.save(IMSFR(pretrained=False, key_backbone=args.backbone).state_dict(), model)
    session = Session(load_core(model, args.device, args.memory_budget, args.precision), video=path, workdir=workdir)
    session.set_mask(0, video.mask(0).numpy().astype(np.uint8))
    readings = {}

    def progress(frame, done, total):
        if done in (args.check, total):
            readings[done] = (peak_rss(), time.perf_counter())
            print(f"  {done:>6} frames: peak RSS {readings[done][0] / MIB:.1f} MiB", flush=True)

    start = time.perf_counter()
    result = session.propagate(0, progress=progress, timed=True)
    wall = time.perf_counter() - start
    (first, _), (last, _) = readings[args.check], readings[args.frames]
    held = sum(bank.held_bytes() for bank in session.core.banks)
    print(f"\nmemory_budget {args.memory_budget}: peak RSS {first / MIB:.1f} MiB at frame {args.check}, "
          f"{last / MIB:.1f} MiB at frame {args.frames}: growth {(last - first) / MIB:.1f} MiB "
          f"({'<=' if last - first <= 25 * MIB else '>'} 25 MiB); the core holds {held / MIB:.1f} MiB of memory")
    print(f"time per propagated frame: {1000 * result.seconds / result.processed:.0f} ms network "
          f"({result.processed} frames through the network), {1000 * wall / len(result.frames):.0f} ms wall "
          f"(decoding, frame cache and mask PNGs included); {args.device}, {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
