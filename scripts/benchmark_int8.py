"""int8 ONNX graphs against float32 ones (docs/deployment.md, "int8"): accuracy and speed.

    # accuracy on a DAVIS 2017 val set: PyTorch float32, ONNX Runtime float32 and int8 side by side
    python scripts/benchmark_int8.py accuracy --model M.pth --float onnx/ --int8 onnx_int8/ --davis_path DAVIS
    # speed: s/frame of each export, fresh processes, interleaved (float, int8, float, ...)
    python scripts/benchmark_int8.py speed --onnx float32=onnx/ int8=onnx_int8/ --sizes 480x854 240x432

accuracy: every sequence of the val set through the inference core (eval_davis.py's settings:
the DAVIS 2017 preset, --memory_budget if given) with the three backends; prints J&F of each
(the built-in DAVIS evaluator), the differences, the share of pixels with the same label and
the largest |difference of probabilities| per video.

speed: a random video of --frames frames at each size with 1 and 2 objects (--objects), each
run in a fresh process: seconds per frame in ``core.step`` (the first frame, which only encodes
the given masks, left out; a 2-frame warm-up video first), the seconds per frame of each graph,
and /proc/loadavg before and after; medians over --repeats interleaved rounds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from inference_core.onnx_export import GRAPH_FILES  # noqa: E402

RUNS = ("torch", "float32", "int8")


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def cpu_name():
    """The CPU's model name and its SIMD flags that int8 and bfloat16 kernels use."""
    name, flags = "unknown CPU", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "avx512_bf16")
    return f"{name}; {', '.join(f for f in wanted if f in flags) or 'none'} of {', '.join(wanted)}"


# ----------------------------------------------------------------------------- accuracy
def backends(model, float_dir, int8_dir):
    from inference_core.onnx_backend import OnnxBackend
    from model.checkpoint import build_network

    network = build_network(model, "cpu")
    network.to(memory_format=torch.channels_last)  # as the eval scripts' default path
    return dict(torch=network, float32=OnnxBackend(float_dir, "cpu", checkpoint=model),
                int8=OnnxBackend(int8_dir, "cpu", checkpoint=model))


def run_sequence(backend, config, spec, objects, out_dir):
    """Probabilities of every frame of one video, its PNGs written to ``out_dir``."""
    from inference_core.core import InferenceCore
    from inference_core.video_runner import VideoFrames, given_objects, output_labels
    from util.palette import save_palette_png

    os.makedirs(out_dir, exist_ok=True)
    core = InferenceCore(backend, config, "cpu")
    probabilities = []
    with spec.frames.reader() as reader:
        frames = VideoFrames(reader, spec.frames, objects.size, objects.size, "cpu")
        for result in core.run(frames, given_objects(objects, objects.size, "cpu")):
            probabilities.append(result.prob)
            save_palette_png(os.path.join(out_dir, spec.frames.name(result.index) + ".png"),
                             output_labels(result.prob, result.index, objects), objects.palette)
    return probabilities


def accuracy(args):
    from inference_core.data.objects import load_objects
    from inference_core.data.readers import DavisSet
    from util.config import PRESETS
    from util.davis_metrics import evaluate_davis

    trainval = os.path.join(args.davis_path, "trainval")
    config = PRESETS["davis2017"].replace(memory_budget=args.memory_budget)
    nets = backends(args.model, args.float, args.int8)
    dataset = DavisSet(trainval, "2017", "val")
    videos, same, total = {}, dict.fromkeys(("float32-torch", "int8-float32", "int8-torch"), 0), 0
    seconds = dict.fromkeys(RUNS, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        for name in dataset.names:
            spec = dataset.video(name)
            objects = load_objects(spec)
            probs = {}
            for run in RUNS:
                start = time.perf_counter()
                probs[run] = run_sequence(nets[run], config, spec, objects, os.path.join(tmp, run, name))
                seconds[run] += time.perf_counter() - start
            row = {}
            for pair in same:
                a, b = pair.split("-")
                same[pair] += sum(int((x.argmax(0) == y.argmax(0)).sum()) for x, y in zip(probs[a], probs[b]))
                row[pair] = max((x - y).abs().max().item() for x, y in zip(probs[a], probs[b]))
            total += sum(p[0].numel() for p in probs["torch"])
            videos[name] = dict(frames=len(probs["torch"]), objects=len(objects.to_original) - 1, max_abs_dp=row)
        scores = {run: evaluate_davis(trainval, os.path.join(tmp, run), "2017", "val", workers=1).global_table
                  for run in RUNS}
    result = dict(cpu=cpu_name(), davis_path=args.davis_path, memory_budget=args.memory_budget, videos=videos,
                  seconds=seconds, label_agreement={pair: n / total for pair, n in same.items()},
                  scores={run: {k: scores[run][k] for k in ("J&F-Mean", "J-Mean", "F-Mean")} for run in RUNS})
    print(f"{args.davis_path}: {len(videos)} videos, {sum(v['frames'] for v in videos.values())} frames, "
          f"memory budget {args.memory_budget}; {result['cpu']}")
    print("\n| run | J&F | J | F | s |\n|---|---|---|---|---|")
    for run in RUNS:
        s = result["scores"][run]
        print(f"| {run} | {s['J&F-Mean']:.4f} | {s['J-Mean']:.4f} | {s['F-Mean']:.4f} | {seconds[run]:.1f} |")
    print("\n| pair | ΔJ&F | labels equal | max abs Δp (largest video) |\n|---|---|---|---|")
    for pair in same:
        a, b = pair.split("-")
        delta = result["scores"][a]["J&F-Mean"] - result["scores"][b]["J&F-Mean"]
        print(f"| {a} - {b} | {delta:+.4f} | {100 * result['label_agreement'][pair]:.3f} % | "
              f"{max(v['max_abs_dp'][pair] for v in videos.values()):.2e} |")
    print("\n| video | frames | objects | max abs Δp " + " | ".join(same) + " |\n|---|---|---|---|---|---|")
    for name, v in videos.items():
        print(f"| {name} | {v['frames']} | {v['objects']} | " + " | ".join(f"{v['max_abs_dp'][p]:.2e}" for p in same)
              + " |")
    return result


# ----------------------------------------------------------------------------- speed
def time_video(folder, height, width, objects, frames, threads):
    """One timing (the hidden ``_time`` command, run in a fresh process)."""
    from inference_core.core import InferenceCore
    from inference_core.onnx_backend import OnnxBackend
    from util.config import PRESETS

    torch.set_num_threads(threads)
    load_before = loadavg()
    backend = OnnxBackend(folder, "cpu", threads=threads)
    graph_seconds = dict.fromkeys(GRAPH_FILES, 0.0)
    run = backend._run

    def timed(graph, feed):
        start = time.perf_counter()
        out = run(graph, feed)
        graph_seconds[graph] += time.perf_counter() - start
        return out

    backend._run = timed
    generator = torch.Generator().manual_seed(0)
    video = [torch.randn(3, height, width, generator=generator) for _ in range(frames)]
    mask = torch.zeros(height, width, dtype=torch.long)
    for i in range(objects):  # boxes of a quarter of the frame's sides, side by side
        top, left = height // 8 + i * height // 3, width // 8 + i * width // 3
        mask[top:top + height // 4, left:left + width // 4] = i + 1
    given = {0: (mask, list(range(1, objects + 1)))}
    config = PRESETS["davis2017"]
    for _ in InferenceCore(backend, config, "cpu").run(video[:2], given):  # warm-up: sessions' first runs
        pass
    graph_seconds.update(dict.fromkeys(GRAPH_FILES, 0.0))
    steps = [result.seconds for result in InferenceCore(backend, config, "cpu").run(video, given, timed=True)]
    return dict(s_per_frame=sum(steps[1:]) / (frames - 1), graphs={g: s / (frames - 1) for g, s in graph_seconds.items()},
                load_before=load_before, load_after=loadavg(), precision=backend.precision)


def speed(args):
    exports = dict(item.split("=", 1) for item in args.onnx)
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes]
    runs = {}
    for repeat in range(args.repeats):
        for (height, width) in sizes:
            for objects in args.objects:
                for name, folder in exports.items():
                    command = [sys.executable, os.path.abspath(__file__), "_time", folder, str(height), str(width),
                               str(objects), str(args.frames), str(args.threads)]
                    done = subprocess.run(command, capture_output=True, text=True)
                    if done.returncode:
                        raise RuntimeError(f"{name} {height}x{width} {objects}: {done.stderr.strip()[-500:]}")
                    result = json.loads(done.stdout.strip().splitlines()[-1])
                    runs.setdefault(f"{height}x{width}|{objects}|{name}", []).append(result)
                    print(f"round {repeat + 1}: {name} {height}x{width} {objects} object(s): "
                          f"{result['s_per_frame']:.3f} s/frame (load {result['load_before']} -> "
                          f"{result['load_after']})", flush=True)
    print(f"\n{cpu_name()}; {args.threads} threads, {args.frames}-frame videos, medians of {args.repeats}\n")
    first = next(iter(exports))
    header = " | ".join(f"{g} s" for g in GRAPH_FILES)
    print(f"| size | objects | export | s/frame | / {first} | {header} | runs | load (1-min, before) |")
    print("|---|---|---|---|---|" + "---|" * len(GRAPH_FILES) + "---|---|")
    table = {}
    for key, results in runs.items():
        size, objects, name = key.split("|")
        median = statistics.median(r["s_per_frame"] for r in results)
        table[key] = dict(median=median, graphs={g: statistics.median(r["graphs"][g] for r in results)
                                                 for g in GRAPH_FILES}, runs=results)
    for key, row in table.items():
        size, objects, name = key.split("|")
        base = table[f"{size}|{objects}|{first}"]["median"]
        graphs = " | ".join(f"{row['graphs'][g]:.3f}" for g in GRAPH_FILES)
        print(f"| {size} | {objects} | {name} | {row['median']:.3f} | {row['median'] / base:.2f} | {graphs} | "
              + ", ".join(f"{r['s_per_frame']:.2f}" for r in row["runs"]) + " | "
              + ", ".join(r["load_before"].split()[0] for r in row["runs"]) + " |")
    return dict(cpu=cpu_name(), threads=args.threads, frames=args.frames, table=table)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_time"]:  # a child of ``speed``
        folder, height, width, objects, frames, threads = argv[1:]
        print(json.dumps(time_video(folder, int(height), int(width), int(objects), int(frames), int(threads))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    a = commands.add_parser("accuracy", help="J&F, label agreement and max |dp| of PyTorch, float32 and int8")
    a.add_argument("--model", required=True)
    a.add_argument("--float", required=True, help="the float32 export of --model")
    a.add_argument("--int8", required=True, help="the int8 export of --model")
    a.add_argument("--davis_path", required=True, help="DAVIS 2017 root (holds trainval/) whose val split is run")
    a.add_argument("--memory_budget", type=int, default=None)
    s = commands.add_parser("speed", help="s/frame of exports in fresh processes")
    s.add_argument("--onnx", nargs="+", required=True, metavar="NAME=DIR", help="the exports; the first is the base")
    s.add_argument("--sizes", nargs="+", default=["480x854", "240x432"])
    s.add_argument("--objects", nargs="+", type=int, default=[1, 2])
    s.add_argument("--frames", type=int, default=6)
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--threads", type=int, default=2)
    for command in (a, s):
        command.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    from inference_core.data import SequenceError
    from inference_core.onnx_backend import OnnxError
    from model.checkpoint import CheckpointError

    try:
        result = accuracy(args) if args.command == "accuracy" else speed(args)
    except (OnnxError, CheckpointError, SequenceError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
