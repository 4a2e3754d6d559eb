"""How long the interactive demo's server takes per action, as the page calls it (interactive/app.py's
functions, JSON in and out, with the frame and masks encoded for the page).

    python scripts/benchmark_demo_latency.py [--size 480 854] [--frames 12] [--repeats 40]

On a synthetic video of --size (H W) with two objects per frame and masks on every frame: a committed
brush stroke (12 points, radius 6), a frame change (the next frame's JPEG and masks), and a click to
mask (the first, positive click on an object). Prints the median and 95th percentile of each, and the
machine. No network is run (the actions do not use it).
"""
import argparse
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from dataset.synthetic import make_davis_dataset  # noqa: E402
from interactive.app import DemoApp  # noqa: E402
from interactive.session import Session  # noqa: E402
from interactive.tools import next_click  # noqa: E402
from util.palette import load_annotation, save_palette_png  # noqa: E402


class NoCore:
    """Stands in for the inference core: these actions never call it."""
    device = torch.device("cpu")


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def percentiles(seconds):
    ms = 1000 * np.asarray(seconds)
    return f"median {np.median(ms):6.1f} ms, 95th percentile {np.percentile(ms, 95):6.1f} ms (n={len(ms)})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, nargs=2, default=(480, 854), metavar=("H", "W"))
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory(dir=".") as work:
        root = os.path.join(work, "data")
        name = make_davis_dataset(root, num_sequences=1, num_frames=args.frames, size=tuple(args.size),
                                  max_objects=2, seed=args.seed, splits=("val",))["val"][0]
        frames = os.path.join(root, "JPEGImages", "480p", name)
        truth = [load_annotation(os.path.join(root, "Annotations", "480p", name, f"{t:05d}.png"))
                 for t in range(args.frames)]
        session = Session(NoCore(), images=frames, workdir=work, size=min(args.size))
        for t in range(args.frames):  # masks on every frame, as after a propagation
            save_palette_png(session.store.mask_path(t), truth[t])
            session.frame(t)          # the frame cache filled, as after a propagation
        app = DemoApp(NoCore(), session, workdir=work)
        base = {"session": session.id, "object": 1}
        timings = {"stroke": [], "frame change": [], "click to mask": []}
        rng = np.random.default_rng(args.seed)
        for i in range(args.repeats):
            t = i % args.frames
            start = time.perf_counter()
            reply = app.call("view", {**base, "frame": t})
            assert reply["ok"], reply
            timings["frame change"].append(time.perf_counter() - start)
            x, y = rng.uniform(50, min(args.size) - 50, 2)
            points = [[float(x + 4 * j), float(y + 2 * j)] for j in range(12)]
            start = time.perf_counter()
            done = app.call("edit", {**base, "frame": t, "state": reply["state"], "tool": "brush", "points": points,
                                     "radius": 6})
            timings["stroke"].append(time.perf_counter() - start)
            assert done["ok"], done
            k = 1 + i % 2
            target = truth[t] == k
            if target.any():
                cx, cy, _ = next_click(target, np.zeros_like(target))
                start = time.perf_counter()
                done = app.call("edit", {**base, "object": k, "frame": t, "state": done["state"], "tool": "click",
                                         "clicks": [[cx, cy, True]]})
                timings["click to mask"].append(time.perf_counter() - start)
                assert done["ok"], done
        print(f"demo server time per action, video {args.size[1]}x{args.size[0]} (working size "
              f"{session.size[1]}x{session.size[0]}):")
        for what, seconds in timings.items():
            print(f"  {what:14s} {percentiles(seconds)}")
        print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
              f"OpenCV {cv2.__version__}, load {os.getloadavg()[0]:.2f}")
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
