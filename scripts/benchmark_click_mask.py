"""How well and how fast click to mask (interactive/tools.py's click_mask, no weights) segments objects.

    OMP_NUM_THREADS=2 python scripts/benchmark_click_mask.py [--frames 20] [--seed 0] [--size 480 854]

Renders --frames synthetic frames (dataset/synthetic.py's DAVIS generator, one frame per sequence, 1 to
--max_objects textured objects, some partly hidden by others, so of several visible sizes) into a temporary
folder under --work (removed at the end). For every object it simulates the usual clicks (tools.next_click:
the centre of the larger error, starting from an empty mask), up to --clicks of them, each time calling
click_mask with the whole click list so far, as the demo does. Prints the fraction of objects that reach
IoU >= 0.8 within the clicks (the bar: 80 %), the mean IoU after each click, the time per call (median and
95th percentile; the bar: 500 ms at 480x854) and the machine. Exit status 1 where a bar is missed.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dataset.synthetic import make_davis_dataset  # noqa: E402
from interactive.tools import click_mask, next_click  # noqa: E402
from util.palette import load_annotation  # noqa: E402

IOU_BAR, FRACTION_BAR, TIME_BAR_MS = 0.8, 0.8, 500.0


def cpu_model():
    """``lscpu``'s model name (/proc/cpuinfo's where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "unknown")


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def render(work, frames, size, max_objects, seed):
    """[(RGB image, label map)] of ``frames`` one-frame synthetic sequences (files written under ``work``)."""
    names = make_davis_dataset(work, num_sequences=frames, num_frames=1, size=size, max_objects=max_objects,
                               seed=seed, splits=("val",))["val"]
    return [(np.array(Image.open(os.path.join(work, "JPEGImages", "480p", name, "00000.jpg")).convert("RGB")),
             load_annotation(os.path.join(work, "Annotations", "480p", name, "00000.png"))) for name in names]


def simulate(image, truth, clicks_max, seconds):
    """IoU after each simulated click (the last repeated once the mask is exact); (wall, CPU) time of each call
    goes to ``seconds``."""
    predicted, clicks, ious = np.zeros_like(truth), [], []
    for _ in range(clicks_max):
        click = next_click(truth, predicted)
        if click is None:
            ious.append(ious[-1])
            continue
        clicks.append(click)
        start, cpu = time.perf_counter(), time.process_time()
        predicted = click_mask(image, clicks)
        seconds.append((time.perf_counter() - start, time.process_time() - cpu))
        # click_mask's promise: every positive click's pixel in, every negative one's out.
        assert all(predicted[y, x] == positive for x, y, positive in clicks), clicks
        ious.append(iou(predicted, truth))
    return ious


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, nargs=2, default=(480, 854), metavar=("H", "W"))
    parser.add_argument("--max_objects", type=int, default=3)
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--work", default=".", help="folder for the temporary dataset (default: here)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.work, prefix="click_mask_") as work:
        scenes = render(work, args.frames, tuple(args.size), args.max_objects, args.seed)
    seconds, rows, areas = [], [], []
    for image, labels in scenes:
        for k in range(1, int(labels.max()) + 1):
            truth = labels == k
            if truth.any():
                areas.append(truth.mean())
                rows.append(simulate(image, truth, args.clicks, seconds))
    ious, ms = np.array(rows), 1000 * np.array(seconds)
    reached = (ious.max(axis=1) >= IOU_BAR).mean()
    median, p95 = np.median(ms[:, 0]), np.percentile(ms[:, 0], 95)
    load = os.getloadavg()[0]
    print(f"click to mask on {args.frames} synthetic frames {args.size[1]}x{args.size[0]} (seed {args.seed}): "
          f"{len(rows)} objects, visible area {100 * min(areas):.1f} % .. {100 * max(areas):.1f} % of the frame "
          f"(median {100 * np.median(areas):.1f} %)")
    print(f"  IoU >= {IOU_BAR} within {args.clicks} clicks: {100 * reached:.1f} % of objects (bar {FRACTION_BAR:.0%})")
    print("  mean IoU after " + ", ".join(f"{c + 1} click{'s' * (c > 0)} {v:.3f}" for c, v in enumerate(ious.mean(0))))
    print(f"  time per click_mask call: median {median:.1f} ms, 95th percentile {p95:.1f} ms (n={len(ms)}, "
          f"bar {TIME_BAR_MS:.0f} ms); CPU time of the process: median {np.median(ms[:, 1]):.1f} ms, "
          f"95th percentile {np.percentile(ms[:, 1], 95):.1f} ms")
    print(f"machine: {cpu_model()} (lscpu), {os.cpu_count()} cores, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), "
          f"load average {load:.2f}")
    if load > os.cpu_count():
        print("  (the machine is busy: wall times are inflated by other processes; CPU time is what one call costs)")
    met = reached >= FRACTION_BAR and median <= TIME_BAR_MS and p95 <= TIME_BAR_MS
    print("bars: met" if met else "bars: NOT met")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
