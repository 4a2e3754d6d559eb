"""Time per frame and peak memory on a long synthetic video, with and without --memory_budget.

A video of --frames frames (--height x --width; one or two discs moving over a
panning background) is generated on the fly, frame by frame: it is never held
in memory. The inference core segments it twice, each run in a fresh
process so that peak figures do not mix: once with --memory_budget N and once
without a budget (every memorised frame kept, the reference's behaviour;
--no_unbounded skips it). Every --report_every frames it prints the time per
frame over the last window (time in core.step) and the peak memory: the
process's peak resident size (RSS) on CPU, torch.cuda.max_memory_allocated on
CUDA. At the end it prints, for the budgeted run, the growth of the peak from
the first report to the last next to the bytes of the budgeted store itself,
and the ratio of the last window's time per frame to the first's.

    python scripts/benchmark_long_video.py --frames 3000 --memory_budget 20 --json long.json
    python scripts/benchmark_long_video.py --device cuda --precision auto --height 480 --width 854 --offload_memory

A benchmark (figures), not a test. The network is randomly initialised unless
--model is given: speed and memory do not depend on the weights.
"""
import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from inference_core.core import InferenceCore  # noqa: E402
from model.checkpoint import CheckpointError, build_network  # noqa: E402
from model.network import IMSFR  # noqa: E402
from util.config import PRECISIONS, PRESETS  # noqa: E402
from util.device import inference_dtype, pick_device, precision_name  # noqa: E402

MIB = 2 ** 20
_CHILD_PREFIX = "@@result "


class SyntheticVideo:
    """Frame t of a video that is never stored: a smooth background panning one
    pixel per frame, ``objects`` discs on Lissajous paths, a little noise. Frames
    are ImageNet-normalised-like (3, H, W) tensors; ``mask(t)`` the label map."""

    def __init__(self, height, width, objects=2, seed=0):
        self.height, self.width, self.objects, self.seed = height, width, objects, seed
        g = torch.Generator().manual_seed(seed)
        coarse = torch.randn(1, 3, max(2, height // 16), max(2, width // 16), generator=g)
        self.background = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear",
                                                          align_corners=False)[0]
        self.colours = torch.tensor([[1.8, -1.2, 0.4], [-1.0, 1.5, -1.6]])[:objects].view(objects, 3, 1, 1)
        self.radius = max(3.0, min(height, width) / 7)
        ys = torch.arange(height, dtype=torch.float32).view(height, 1)
        xs = torch.arange(width, dtype=torch.float32).view(1, width)
        self.grid = ys, xs

    def _centres(self, t):
        h, w = self.height, self.width
        for k in range(self.objects):
            phase = k * math.pi
            yield (h / 2 + 0.3 * h * math.cos(2 * math.pi * t / 131 + phase),
                   w / 2 + 0.3 * w * math.sin(2 * math.pi * t / 97 + phase))

    def _discs(self, t):
        ys, xs = self.grid
        return [((ys - cy) ** 2 + (xs - cx) ** 2 <= self.radius ** 2) for cy, cx in self._centres(t)]

    def frame(self, t):
        image = torch.roll(self.background, shifts=t % self.width, dims=2).clone()
        for k, disc in enumerate(self._discs(t)):
            image = torch.where(disc, self.colours[k], image)
        noise = torch.randn(3, self.height, self.width, generator=torch.Generator().manual_seed(self.seed + t))
        return image + 0.1 * noise

    def frames(self, count, device):
        """The first ``count`` frames as a lazy sequence on ``device`` (``InferenceCore.run``)."""
        video = self

        class Frames:
            def __len__(self):
                return count

            def __getitem__(self, t):
                return video.frame(t).to(device)

        return Frames()

    def mask(self, t):
        labels = torch.zeros(self.height, self.width, dtype=torch.long)
        for k, disc in enumerate(self._discs(t)):
            labels[disc] = k + 1
        return labels


def rss_bytes():
    """Current resident size of this process (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_bytes(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run_one(args, budget):
    """One run in this process; returns the reports."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    if args.model:
        network = build_network(args.model, device)
    else:
        torch.manual_seed(0)
        network = IMSFR(pretrained=False, key_backbone=args.backbone).to(device).eval()
    config = PRESETS[args.benchmark].replace(memory_budget=budget, precision=args.precision, offload_memory=args.offload_memory,
                                             seed=args.seed, mem_every=args.mem_every or PRESETS[args.benchmark].mem_every)
    core = InferenceCore(network, config, device)
    video = SyntheticVideo(args.height, args.width, args.objects, seed=args.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    reports, window, window_frames = [], 0.0, 0
    given = {0: (video.mask(0).to(device), list(range(1, args.objects + 1)))}
    for result in core.run(video.frames(args.frames, device), given, timed=True):
        t = result.index
        window += result.seconds
        window_frames += 1
        if (t + 1) % args.report_every == 0 or t + 1 == args.frames:
            state = core.memory_state(1)
            report = dict(frames=t + 1, ms_per_frame=1000 * window / window_frames, peak_bytes=peak_bytes(device),
                          rss_bytes=rss_bytes(), store_bytes=sum(bank.store_bytes for bank in core.banks),
                          memory_frames=len(state.frames), memorised=state.memorised)
            reports.append(report)
            print(f"  {'budget ' + str(budget) if budget else 'no budget'}: {report['frames']:>6} frames  "
                  f"{report['ms_per_frame']:8.1f} ms/frame  peak {report['peak_bytes'] / MIB:8.1f} MiB  "
                  f"store {report['store_bytes'] / MIB:8.1f} MiB ({report['memory_frames']} of "
                  f"{report['memorised']} memorised frames)", file=sys.stderr, flush=True)
            window, window_frames = 0.0, 0
    return reports


def summarise(reports, budget):
    first, last = reports[0], reports[-1]
    summary = dict(frames=last["frames"], peak_growth_bytes=last["peak_bytes"] - first["peak_bytes"],
                   store_bytes=last["store_bytes"], ms_first=first["ms_per_frame"], ms_last=last["ms_per_frame"],
                   time_ratio=last["ms_per_frame"] / first["ms_per_frame"], peak_last_bytes=last["peak_bytes"])
    if budget:
        summary["growth_below_store"] = summary["peak_growth_bytes"] < summary["store_bytes"]
        summary["time_flat"] = summary["time_ratio"] <= 1.2
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--objects", type=int, default=2, choices=[1, 2])
    parser.add_argument("--memory_budget", type=int, default=PRESETS["generic"].memory_budget,
                        help="budget of the bounded run (default: eval_generic.py's, %(default)s)")
    parser.add_argument("--no_unbounded", action="store_true", help="skip the run without a budget")
    parser.add_argument("--benchmark", default="davis2017", choices=sorted(PRESETS),
                        help="memory/sampler preset (default: %(default)s)")
    parser.add_argument("--mem_every", type=int, default=None, help="override the preset's mem_every")
    parser.add_argument("--report_every", type=int, default=1000)
    parser.add_argument("--model", help="weights to load (default: random-init network)")
    parser.add_argument("--backbone", default="resnet18", choices=["resnet18", "resnet50", "resnet101"],
                        help="key encoder of the random-init network (default: %(default)s)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32, bf16, fp16 or auto, as the eval scripts (default: %(default)s)")
    parser.add_argument("--amp", dest="precision", action="store_const", const="amp",
                        help="the reference's --amp: --precision fp16 on CUDA, bf16 elsewhere")
    parser.add_argument("--offload_memory", action="store_true", help="long-term memory in pinned CPU memory (CUDA)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--parallel", action="store_true",
                        help="run the two configurations at the same time (one process each; peaks are per process)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the reports and the summary here")
    parser.add_argument("--_child", choices=["budget", "none"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.frames < 2 or args.report_every < 1 or args.memory_budget < 1:
        parser.error("--frames must be at least 2, --report_every and --memory_budget at least 1")

    if args._child:  # one configuration, in its own process
        try:
            reports = run_one(args, args.memory_budget if args._child == "budget" else None)
        except (CheckpointError, RuntimeError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(_CHILD_PREFIX + json.dumps(reports), flush=True)
        return 0

    try:
        device = pick_device(args.device)
        precision = precision_name(inference_dtype(args.precision, device))
    except (RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.offload_memory and device.type != "cuda":
        print(f"note: --offload_memory has no effect on {device.type}")
    machine = dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                   cpus=os.cpu_count(), torch=torch.__version__, device=str(device),
                   gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                   threads=args.threads or torch.get_num_threads())
    print(f"{args.frames} frames at {args.height}x{args.width}, {args.objects} object(s), {args.benchmark} preset"
          f"{', mem_every ' + str(args.mem_every) if args.mem_every else ''}, {args.backbone if not args.model else args.model}"
          f", {machine['device']} ({machine['cpus']} CPUs, {machine['threads']} torch threads), {precision}")
    peak_name = "peak GPU memory allocated" if device.type == "cuda" else "peak process RSS"
    results = {}
    kinds = ["budget"] + ([] if args.no_unbounded else ["none"])
    labels = {"budget": f"memory_budget {args.memory_budget}", "none": "no budget"}

    def launch(kind):
        print(f"{labels[kind]}: running", flush=True)
        command = [sys.executable, os.path.abspath(__file__), *(argv if argv is not None else sys.argv[1:]),
                   "--_child", kind]
        return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    processes = {kind: launch(kind) for kind in kinds} if args.parallel else {}
    for kind in kinds:
        process = processes.get(kind) or launch(kind)
        stdout, _ = process.communicate()
        lines = [line for line in stdout.splitlines() if line.startswith(_CHILD_PREFIX)]
        if process.returncode != 0 or not lines:
            print(f"error: the {labels[kind]} run failed (exit code {process.returncode})", file=sys.stderr)
            return process.returncode or 1
        reports = json.loads(lines[-1][len(_CHILD_PREFIX):])
        budget = args.memory_budget if kind == "budget" else None
        results[kind] = dict(memory_budget=budget, reports=reports, summary=summarise(reports, budget))

    header = f"\n{'frames':>7} | {'budget ms/frame':>16} {'budget peak MiB':>16}"
    if "none" in results:
        header += f" | {'no-budget ms/frame':>18} {'no-budget peak MiB':>18}"
    print(header)
    for i, report in enumerate(results["budget"]["reports"]):
        row = f"{report['frames']:>7} | {report['ms_per_frame']:>16.1f} {report['peak_bytes'] / MIB:>16.1f}"
        if "none" in results:
            other = results["none"]["reports"][i]
            row += f" | {other['ms_per_frame']:>18.1f} {other['peak_bytes'] / MIB:>18.1f}"
        print(row)
    s = results["budget"]["summary"]
    first = results["budget"]["reports"][0]["frames"]
    print(f"\nmemory_budget {args.memory_budget}: {peak_name} grew {s['peak_growth_bytes'] / MIB:.1f} MiB from "
          f"{first} to {s['frames']} frames; the budgeted store itself is {s['store_bytes'] / MIB:.1f} MiB "
          f"({'smaller' if s['growth_below_store'] else 'NOT smaller'}). Time per frame: "
          f"{s['ms_first']:.1f} ms (frames 1-{first}) -> {s['ms_last']:.1f} ms (last {args.report_every}), "
          f"x{s['time_ratio']:.2f} ({'<=' if s['time_flat'] else '>'} 1.2)")
    if "none" in results:
        u = results["none"]["summary"]
        print(f"no budget: {peak_name} grew {u['peak_growth_bytes'] / MIB:.1f} MiB from {first} to {u['frames']} "
              f"frames (store {u['store_bytes'] / MIB:.1f} MiB at the end); time per frame {u['ms_first']:.1f} -> "
              f"{u['ms_last']:.1f} ms, x{u['time_ratio']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(command=" ".join(["python", "scripts/benchmark_long_video.py",
                                             *(argv if argv is not None else sys.argv[1:])]),
                           frames=args.frames, height=args.height, width=args.width, objects=args.objects,
                           benchmark=args.benchmark, mem_every=args.mem_every
                           or PRESETS[args.benchmark].mem_every, backbone=args.backbone,
                           model=args.model, parallel=args.parallel, peak=peak_name, machine=machine,
                           runs=results), f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
