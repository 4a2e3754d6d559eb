"""Inference speed: the optimised core against the baseline core, in one run.

The baseline is the core as it was before the speed work (scripts/baseline_core.py:
per-read ``IMSFR.segment`` with per-object decoder, dense top-k readout); the optimised
path is ``InferenceCore`` as the eval scripts build it (inference_core/build.py: channels-last weights).
Both use the same random-init network (or --model) on the same synthetic video,
runs interleaved (baseline, optimised, baseline, ...),
--repeats times; the figures are medians of the repeats. Prints:

* per-frame time (s, time in ``core.step`` over the video, synchronised on CUDA)
  for 1, 2 and 4 objects (--objects), baseline and optimised, and their ratio;
  with --precision bf16|fp16|auto (or the reference's --amp) also both paths in that
  precision, where it resolves to a reduced one (util/device.py: inference_dtype);
* the memory read per frame: long-term memory frames read per object and the
  MiB of keys and values the three readouts read;
* a per-component table (key encoder, value encoder, readouts, gate, decoder,
  aggregation) of both paths on one frame with the memory the video ends with;
* a YouTube-style video (youtube preset, every 5th frame scored, an object
  appearing mid-video): frames processed and time with every frame processed
  and with the core skipping the frames nothing needs (``will_process``).

    python scripts/benchmark_inference.py --frames 8 --repeats 3          # 854x480, ResNet-101
    python scripts/benchmark_inference.py --device cuda --precision auto --json out.json
    python scripts/benchmark_inference.py --frames 6 --height 240 --width 432 --backbone resnet18
    python scripts/benchmark_inference.py --backend onnxruntime --objects 2 --no_components --youtube_frames 0
        (also ONNX Runtime, this run's network exported first, and PyTorch without the speed layer
         ("plain"), in the same interleaved runs; docs/deployment.md)
"""
import argparse
import copy
import json
import os
import platform
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from inference_core.core import InferenceCore  # noqa: E402
from inference_core.memory_reader import FrameReader  # noqa: E402
from model.aggregate import soft_aggregate  # noqa: E402
from model.checkpoint import CheckpointError, build_network  # noqa: E402
from model.network import IMSFR  # noqa: E402
from scripts.baseline_core import baseline_core, baseline_read  # noqa: E402
from util.config import PRECISIONS, PRESETS  # noqa: E402
from util.device import inference_dtype, pick_device, precision_name, synchronize  # noqa: E402
from util.tensor_util import pad_divide_by  # noqa: E402


def synthetic_video(num_frames, height, width, num_objects, device, seed=0):
    """Random normalised frames and a first-frame mask with ``num_objects`` boxes."""
    generator = torch.Generator().manual_seed(seed)
    frames = [torch.randn(3, height, width, generator=generator).to(device) for _ in range(num_frames)]
    mask = torch.zeros(height, width, dtype=torch.long)
    for k in range(num_objects):
        row, col = divmod(k, 2)
        top, left = height // 8 + row * height // 3, width // 8 + col * width // 3
        mask[top:top + height // 4, left:left + width // 4] = k + 1
    return frames, mask.to(device)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def memory_read(core):
    """(long-term frames read per object, MiB read by the three readouts) for the last frame."""
    frames_per_object, nbytes = [], 0
    for bank in core.banks:
        reads = [bank.last_read[o] for o in bank.objects if o in bank.last_read]
        if bank.num_frames == 0 or not reads:
            continue
        key_bytes, value_bytes = bank.frame_bytes()
        frames_per_object += [len(r) for r in reads]
        num_reads = len(reads) if core.procedure.per_object_draws else 1
        objects_per_read = len(bank.objects) / num_reads
        for r in reads[:num_reads]:
            # long-term + first-frame + previous-frame memories: keys once per read, values per object
            nbytes += (len(r) + 2) * (key_bytes + objects_per_read * value_bytes)
    mean = sum(frames_per_object) / len(frames_per_object) if frames_per_object else 0.0
    return mean, nbytes / 2**20


def run_video(core, frames, given, outputs=None):
    """Seconds in ``core.step`` over the video (``InferenceCore.run``: frames that are neither
    outputs nor memorised are skipped), memory read per processed frame, frames processed."""
    seconds, reads = 0.0, []
    for result in core.run(frames, given, outputs, timed=True):
        seconds += result.seconds
        if core.banks and result.index not in given:
            reads.append(memory_read(core))
    return seconds, reads, core.processed


def components(base_core, fast_core, frames, given, repeats, device):
    """Per-call seconds of each part, both paths, on the last frame of the video
    with the memory the video ends with (median of ``repeats`` interleaved calls)."""
    run_video(base_core, frames[:-1], given)
    run_video(fast_core, frames[:-1], given)
    frame, _ = pad_divide_by(frames[-1].unsqueeze(0))
    num_objects = len(given[0][1])
    top_k = base_core.config.top_k
    times = {}

    def add(path, name, fn):
        synchronize(device)
        start = time.perf_counter()
        out = fn()
        synchronize(device)
        times.setdefault((path, name), []).append(time.perf_counter() - start)
        return out

    with torch.inference_mode():
        for _ in range(repeats):
            for path, core in (("baseline", base_core), ("optimised", fast_core)):
                net = core.network
                with core.autocast():
                    key, f16, f8, f4 = add(path, "key encoder", lambda: core.backend.encode_key(frame))
                    probs = torch.full((1, num_objects, *frame.shape[-2:]), 1.0 / (num_objects + 1), device=device)
                    add(path, "value encoder", lambda: net.encode_value(frame, f16, probs, frame))
                    # The same draw for both paths: read with no sampler (all memory frames).
                    read = core.banks[0].reads(None, False)[0]
                    if path == "baseline":
                        readouts = add(path, "segment: readouts", lambda: baseline_read(key, read.memory, top_k))
                        fused = add(path, "segment: gate fusion", lambda: net.fuse_objects(*readouts))
                        prob = add(path, "segment: decoder", lambda: net.decode_objects(fused, key, f8, f4))
                    else:
                        prepared = add(path, "segment: shared query parts", lambda: net.prepare_decoder(key, f8, f4))
                        fused = add(path, "segment: readouts + gate fusion", lambda: net.fuse(
                            *(r.flatten(0, 1) for r in FrameReader(key).readouts(read, top_k))))
                        prob = add(path, "segment: decoder", lambda: net.decode(prepared, fused)[None])
                    add(path, "aggregation", lambda: soft_aggregate(prob))
    table = {}
    for (path, name), values in times.items():
        table.setdefault(path, {})[name] = statistics.median(values)
    for path in table:
        table[path]["segment total"] = sum(v for k, v in table[path].items() if k.startswith("segment"))
    return table


def onnx_backend(network, args, device):
    """(ONNX Runtime backend, export seconds): --onnx, or this run's network exported to a temporary folder."""
    import tempfile

    from inference_core.onnx_backend import OnnxBackend
    from inference_core.onnx_export import export_onnx

    with tempfile.TemporaryDirectory(prefix="imsfr-onnx-") as tmp:  # the sessions hold the graphs once loaded
        folder, start = args.onnx or tmp, time.perf_counter()
        seconds = None if args.onnx else export_onnx(network, folder, log=None) and time.perf_counter() - start
        return OnnxBackend(folder, device, threads=args.ort_threads or args.threads,
                           optimization=args.ort_optimization), seconds


def make_network(args, device):
    if args.model:
        return build_network(args.model, device)
    torch.manual_seed(0)
    return IMSFR(pretrained=False, key_backbone=args.backbone).to(device).eval()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="weights to load (default: random-init network)")
    parser.add_argument("--backbone", default="resnet101", choices=["resnet18", "resnet50", "resnet101"],
                        help="key encoder of the random-init network (default: %(default)s)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA when present)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="also time both paths in this precision where it is not fp32 on the device "
                             "(auto: fp16 on CUDA, bf16 on CPUs with native bfloat16; default: %(default)s)")
    parser.add_argument("--amp", dest="precision", action="store_const", const="amp",
                        help="the reference's --amp: --precision fp16 on CUDA, bf16 elsewhere")
    parser.add_argument("--frames", type=int, default=8, help="frames per video (default: %(default)s)")
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--objects", default="1,2,4", help="object counts to time (default: %(default)s)")
    parser.add_argument("--baseline_objects", default="2",
                        help="object counts whose baseline is timed too ('all' or a list; default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per path (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--benchmark", default="davis2017", choices=sorted(PRESETS),
                        help="memory/sampler settings of the timed videos (default: %(default)s)")
    parser.add_argument("--channels_last", choices=("on", "off"), default="on",
                        help="optimised path with channels-last convolution weights (default: %(default)s)")
    parser.add_argument("--youtube_frames", type=int, default=16,
                        help="frames of the YouTube-style sparse-output video (0: skip it; default: %(default)s)")
    parser.add_argument("--no_components", action="store_true", help="skip the per-component table")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="onnxruntime: also time ONNX Runtime and PyTorch without the speed layer (fp32)")
    parser.add_argument("--onnx", help="graphs of scripts/export_onnx.py (default: export this run's network)")
    parser.add_argument("--ort_threads", type=int, help="ONNX Runtime intra-op threads (default: --threads)")
    parser.add_argument("--ort_optimization", default="all", choices=("disable", "basic", "extended", "all"),
                        help="ONNX Runtime graph optimisation level (default: %(default)s)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be at least 2")
    try:
        object_counts = [int(n) for n in args.objects.split(",")]
        baseline_counts = object_counts if args.baseline_objects == "all" else \
            [int(n) for n in args.baseline_objects.split(",") if n]
    except ValueError:
        parser.error("--objects/--baseline_objects: comma-separated integers")
    torch.set_num_threads(args.threads)
    try:
        device = pick_device(args.device)
        reduced = precision_name(inference_dtype(args.precision, device))
        base_net = make_network(args, device)
    except (CheckpointError, RuntimeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    fast_net = copy.deepcopy(base_net)  # as the eval scripts build it (inference_core/cli.py)
    if args.channels_last == "on":
        fast_net.to(memory_format=torch.channels_last)
    if args.precision != "fp32" and reduced == "fp32":
        print(f"note: --precision {args.precision} is fp32 on this {device.type}; reduced-precision rows skipped")
    preset = PRESETS[args.benchmark]
    ort, export_seconds = onnx_backend(base_net, args, device) if args.backend == "onnxruntime" else (None, None)

    def cores(precision):
        config = preset.replace(precision=precision)
        return baseline_core(base_net, config, device), InferenceCore(fast_net, config, device)

    result = dict(device=str(device), cpu=cpu_model(), torch=torch.__version__, threads=torch.get_num_threads(),
                  size=[args.height, args.width], frames=args.frames, backbone=args.model or args.backbone,
                  benchmark=args.benchmark, repeats=args.repeats, channels_last=args.channels_last,
                  precision=args.precision, reduced=reduced if reduced != "fp32" else None,
                  load_start=load(), per_frame=[], components=None, youtube=None, onnx_export_seconds=export_seconds,
                  ort=dict(threads=args.ort_threads or args.threads, optimization=args.ort_optimization) if ort else None)
    print(f"device {device} ({result['cpu'] if device.type == 'cpu' else torch.cuda.get_device_name(device)}), "
          f"torch {torch.__version__}, {result['threads']} threads, {args.frames} frames of "
          f"{args.height}x{args.width}, {result['backbone']}, {args.benchmark} settings, "
          f"{args.repeats} interleaved repeats, load {result['load_start']:.2f}", flush=True)

    # ---- per-frame time -------------------------------------------------------------------
    variants = ["fp32"] + ([reduced] if reduced != "fp32" else [])
    for num_objects in object_counts:
        frames, mask = synthetic_video(args.frames, args.height, args.width, num_objects, device)
        given = {0: (mask, list(range(1, num_objects + 1)))}
        for precision in variants:
            base_core, fast_core = cores(precision)
            paths = [("optimised", fast_core)]
            if num_objects in baseline_counts:
                paths.insert(0, ("baseline", base_core))
            if ort is not None and precision == "fp32":
                paths += [("plain", InferenceCore(base_net, preset, device)), ("onnxruntime", InferenceCore(
                    ort, preset, device))]
            for core in [core for name, core in paths if name != "baseline"]:
                run_video(core, frames[:2], given)  # warm-up: primitive selection, allocator
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = {name: [] for name, _ in paths}
            reads = {}
            for _ in range(args.repeats):
                for name, core in paths:
                    s, r, processed = run_video(core, frames, given)
                    seconds[name].append(s / processed)
                    reads[name] = r
            row = dict(objects=num_objects, precision=precision)
            for name in seconds:
                row[name] = statistics.median(seconds[name])
                row[name + "_runs"] = seconds[name]
            if "baseline" in row:
                row["ratio"] = row["optimised"] / row["baseline"]
            r = reads["optimised"]
            row["memory_frames_read"] = sum(x[0] for x in r) / len(r)
            row["memory_mib_read"] = sum(x[1] for x in r) / len(r)
            result["per_frame"].append(row)
            line = f"{num_objects} object(s), {precision}: " + ", ".join(f"{n} {row[n]:.3f}" for n in seconds)
            line += " s/frame" + (f", optimised/baseline {row['ratio']:.3f}" if "ratio" in row else "")
            print(line + "  [runs: " + "; ".join(f"{n} " + " ".join(f"{v:.3f}" for v in seconds[n])
                                                  for n in seconds) + "]", flush=True)

    # ---- per-component table ----------------------------------------------------------------
    if not args.no_components:
        num_objects = 2 if 2 in object_counts else object_counts[0]
        frames, mask = synthetic_video(args.frames, args.height, args.width, num_objects, device)
        base_core, fast_core = cores("fp32")
        result["components"] = dict(objects=num_objects, **components(
            base_core, fast_core, frames, {0: (mask, list(range(1, num_objects + 1)))}, args.repeats, device))

    # ---- YouTube-style sparse outputs ----------------------------------------------------------
    if args.youtube_frames:
        n = args.youtube_frames
        frames, _ = synthetic_video(n, args.height, args.width, 0, device, seed=1)
        _, mask = synthetic_video(1, args.height, args.width, 2, device)
        appear = min(10, n - 2)  # object 2 first annotated on frame 10 (a scored frame)
        outputs = set(range(0, n, 5)) | {n - 1}
        core = InferenceCore(fast_net, PRESETS["youtube"], device)
        yt = dict(frames=n, scored=sorted(outputs), object_2_appears=appear)
        for name, wanted in (("all frames", None), ("skipping", outputs)):
            s, _, processed = run_video(core, frames, {0: (mask, [1]), appear: (mask, [2])}, wanted)
            yt[name] = dict(processed=processed, seconds=s, per_video_frame=s / n, per_processed_frame=s / processed)
        result["youtube"] = yt

    result["load_end"] = load()
    if device.type == "cuda":
        result["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        result["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print_tables(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def print_tables(result):
    print()
    paths = [n for n in ("baseline", "optimised", "plain", "onnxruntime") if any(n in r for r in result["per_frame"])]
    print("| objects | precision | " + " | ".join(f"{n} s/frame" for n in paths) + " | optimised/baseline "
          "| long-term frames read/object | MiB read/frame |\n" + "|---" * (len(paths) + 5) + "|")
    for row in result["per_frame"]:
        ratio = f"**{row['ratio']:.3f}**" if "ratio" in row else "-"
        print(f"| {row['objects']} | {row['precision']} | " + " | ".join(f"{row[n]:.3f}" if n in row else "-"
              for n in paths) + f" | {ratio} | {row['memory_frames_read']:.1f} | {row['memory_mib_read']:.1f} |")
    if result["ort"]:
        export = result["onnx_export_seconds"]
        print(f"ONNX Runtime: {result['ort']['threads']} intra-op threads, graph optimisation "
              f"{result['ort']['optimization']}; " + (f"export {export:.1f} s" if export else "graphs of --onnx"))
    if result["components"]:
        comp = result["components"]
        names = []
        for path in ("baseline", "optimised"):
            names += [n for n in comp[path] if n not in names]
        print(f"\nper call, {comp['objects']} objects, fp32 (s):")
        print("| component | baseline | optimised |")
        print("|---|---|---|")
        for name in names:
            cells = [f"{comp[p][name]:.3f}" if name in comp[p] else "-" for p in ("baseline", "optimised")]
            print(f"| {name} | {cells[0]} | {cells[1]} |")
    if result["youtube"]:
        yt = result["youtube"]
        print(f"\nYouTube-style video (optimised, youtube preset): {yt['frames']} frames, scored "
              f"{yt['scored']}, object 2 from frame {yt['object_2_appears']}")
        print("| | frames processed | s total | s per video frame |")
        print("|---|---|---|---|")
        for name in ("all frames", "skipping"):
            r = yt[name]
            print(f"| {name} | {r['processed']} | {r['seconds']:.2f} | {r['per_video_frame']:.3f} |")
    print(f"\nload average {result['load_start']:.2f} at start, {result['load_end']:.2f} at end; "
          f"peak memory {result['peak_memory_mib']:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
