"""What the speed layer's Winograd convolutions cost and save (inference_core/winograd.py),
as a user sees it: every run in a fresh process (the first frame's one-time work, the
decisions of the auto mode and the kernel transforms included), the paths interleaved
(plain, auto, on, plain, ...), medians of --repeats runs.

The table: key backbone x frame size x path, where plain is ``--winograd off`` (the eval
scripts' default, DEFAULT_MODE in inference_core/winograd.py), auto ``--winograd auto`` and
on ``--winograd on`` (every eligible convolution), with s/frame (time in ``core.step`` over
the video), peak resident memory (the process's ru_maxrss) and whether a path would meet
the bar of a default: no slower than plain and within 15 % of its peak memory (medians of
the ratios to the plain run of the same repeat). The videos: synthetic, a random-init network (weights do
not change the speed), DAVIS 2017 settings. --report combines the --json files of runs.

--clip FRAMES H W instead runs eval_generic.py on an mp4 clip of a synthetic sequence with
a random-init ResNet-18-key checkpoint, --winograd auto and on against off: wall time and peak
resident memory of the whole command.

    python scripts/benchmark_speed_layer.py --repeats 3 --frames 12 --objects 2
    python scripts/benchmark_speed_layer.py --backbones resnet18 --sizes 240x432 --repeats 1
    python scripts/benchmark_speed_layer.py --clip 24 240 432 --repeats 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scripts.benchmark_inference import cpu_model, load, run_video, synthetic_video  # noqa: E402

PATHS = {"plain": "off", "auto": "auto", "on": "on"}  # table row -> --winograd
TIME_LIMIT, MEMORY_LIMIT = 1.0, 1.15  # a default against plain: no slower, within 15 % of its peak memory


def run_one(args):
    """--run: one timed video in this process; prints one JSON line."""
    import torch

    from inference_core.acceleration import accelerate
    from inference_core.core import InferenceCore
    from inference_core.winograd import winograd_plan
    from model.network import IMSFR
    from util.config import PRESETS

    backbone, size, mode = args.run
    height, width = (int(n) for n in size.split("x"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = accelerate(IMSFR(pretrained=False, key_backbone=backbone).eval(), "cpu", winograd=mode)
    frames, mask = synthetic_video(args.frames, height, width, args.objects, "cpu")
    core = InferenceCore(network, PRESETS[args.benchmark], "cpu")
    seconds, _, processed = run_video(core, frames, {0: (mask, list(range(1, args.objects + 1)))})
    plan = winograd_plan(network)
    kernels = plan.kernels() if plan else {}
    print(json.dumps(dict(seconds_per_frame=seconds / processed, winograd_convs=len(kernels),
                          kernel_mib=sum(kernels.values()) / 2**20)))


def measure(command):
    """(stdout, wall seconds, peak resident MiB) of ``command`` in a fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stdout.close()
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{out}")
    return out, time.perf_counter() - start, usage.ru_maxrss / 2**10


def table(args):
    rows = []
    for backbone in args.backbones.split(","):
        for size in args.sizes.split(","):
            runs = {path: [] for path in args.paths.split(",")}
            for _ in range(args.repeats):
                for path in runs:
                    command = [sys.executable, os.path.abspath(__file__), "--run", backbone, size, PATHS[path],
                               "--frames", str(args.frames), "--objects", str(args.objects),
                               "--threads", str(args.threads), "--benchmark", args.benchmark]
                    out, _, peak = measure(command)
                    runs[path].append(dict(json.loads(out.strip().splitlines()[-1]), peak_rss_mib=peak))
                    print(f"{backbone} {size} {path}: {runs[path][-1]}  (load {load():.1f})", flush=True)
            for path, results in runs.items():
                rows.append(dict(backbone=backbone, size=size, path=path, runs=results, **{
                    name: statistics.median(r[name] for r in results)
                    for name in ("seconds_per_frame", "peak_rss_mib", "winograd_convs", "kernel_mib")}))
    print(f"\n{args.frames} frames, {args.objects} objects, {args.benchmark} settings, {args.threads} threads, "
          f"random-init network; medians of {args.repeats} interleaved runs, each in a fresh process; "
          f"{cpu_model()}; load {load():.1f} at end\n")
    return print_table(rows)


def print_table(rows):
    """The table of ``table``'s rows (also of several runs' --json files: --report)."""
    print("| key backbone | frame | path | s/frame | peak RSS (MiB) | Winograd kernels (MiB) "
          "| time / plain (paired) | RSS / plain (paired) | meets a default's bar |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        plain = next((r for r in rows if (r["backbone"], r["size"], r["path"]) ==
                      (row["backbone"], row["size"], "plain")), None)
        # Against the plain run of the same repeat (next to it in time: the load drifts), medians.
        time_ratio, rss_ratio = (statistics.median(r[name] / p[name] for r, p in zip(row["runs"], plain["runs"]))
                                 if plain else float("nan") for name in ("seconds_per_frame", "peak_rss_mib"))
        row.update(time_ratio=time_ratio, rss_ratio=rss_ratio)
        meets = "-"
        if row["path"] != "plain" and plain:
            row["meets"] = time_ratio <= TIME_LIMIT and rss_ratio <= MEMORY_LIMIT
            meets = "yes" if row["meets"] else "**no**"
        print(f"| {row['backbone']} | {row['size']} | {row['path']} | {row['seconds_per_frame']:.3f} "
              f"| {row['peak_rss_mib']:.0f} | {row['winograd_convs']:.0f} ({row['kernel_mib']:.0f}) "
              f"| {time_ratio:.3f} | {rss_ratio:.3f} | {meets} |")
    return rows


def clip_check(args):
    """eval_generic.py on an mp4 clip, --winograd off (the default), auto and on, interleaved."""
    import cv2
    import torch

    from dataset.synthetic import make_davis_dataset
    from model.network import IMSFR
    from util.palette import load_annotation

    frames, height, width = args.clip
    with tempfile.TemporaryDirectory() as tmp:
        names = make_davis_dataset(os.path.join(tmp, "davis"), num_sequences=4, num_frames=frames,
                                   size=(height, width), max_objects=2, splits=("val",))["val"]
        annotations = os.path.join(tmp, "davis", "Annotations", "480p")
        # The first sequence with 2 objects (1 if none has 2).
        name = max(names, key=lambda n: len(set(load_annotation(os.path.join(annotations, n, "00000.png")).flat)))
        mask = os.path.join(annotations, name, "00000.png")
        images = os.path.join(tmp, "davis", "JPEGImages", "480p", name)
        clip = os.path.join(tmp, "clip.mp4")
        writer = cv2.VideoWriter(clip, cv2.VideoWriter_fourcc(*"mp4v"), 24, (width, height))
        for t in range(frames):
            writer.write(cv2.imread(os.path.join(images, f"{t:05d}.jpg")))
        writer.release()
        weights = os.path.join(tmp, "resnet18.pth")
        torch.manual_seed(0)
        torch.save(IMSFR(pretrained=False, key_backbone="resnet18").state_dict(), weights)
        runs = {"off": [], "auto": [], "on": []}
        for _ in range(args.repeats):
            for path in runs:
                command = [sys.executable, "eval_generic.py", "--model", weights, "--video", clip, "--masks", mask,
                           "--output", os.path.join(tmp, "out"), "--device", "cpu", "--overwrite"]
                _, wall, peak = measure(command + ["--winograd", path])
                runs[path].append((wall, peak))
                print(f"{path}: {wall:.1f} s, peak {peak:.0f} MiB  (load {load():.1f})", flush=True)
    print(f"\neval_generic.py, {frames}-frame {height}x{width} mp4 clip ({len(set(load_annotation(mask).flat)) - 1} "
          f"objects), random-init ResNet-18-key checkpoint, {args.repeats} interleaved runs; {cpu_model()}\n")
    print("| path | wall s (median) | runs | peak RSS MiB (median) | runs |")
    print("|---|---|---|---|---|")
    for path, results in runs.items():
        walls, peaks = [w for w, _ in results], [p for _, p in results]
        print(f"| {path} | {statistics.median(walls):.1f} | {' '.join(f'{w:.1f}' for w in walls)} "
              f"| {statistics.median(peaks):.0f} | {' '.join(f'{p:.0f}' for p in peaks)} |")
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="resnet18,resnet101", help="key backbones (default: %(default)s)")
    parser.add_argument("--sizes", default="240x432,480x854", help="frame sizes HxW (default: %(default)s)")
    parser.add_argument("--paths", default="plain,auto,on", help="rows per size, of " + ", ".join(PATHS))
    parser.add_argument("--frames", type=int, default=12, help="frames per video (default: %(default)s)")
    parser.add_argument("--objects", type=int, default=2, help="objects (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per path (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--benchmark", default="davis2017", help="memory/sampler settings (default: %(default)s)")
    parser.add_argument("--clip", type=int, nargs=3, metavar=("FRAMES", "H", "W"),
                        help="instead: eval_generic.py on an mp4 clip, --winograd off, auto and on")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--report", nargs="+", metavar="JSON", help="instead: one table of these runs' --json files")
    parser.add_argument("--run", nargs=3, metavar=("BACKBONE", "HxW", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        return run_one(args)
    if args.report:
        rows = []
        for path in args.report:
            with open(path) as f:
                rows += json.load(f)
        print_table(rows)
        return 0
    if "plain" not in args.paths.split(",") or not set(args.paths.split(",")) <= set(PATHS):
        parser.error(f"--paths: plain and others of {', '.join(PATHS)}")
    result = clip_check(args) if args.clip else table(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
