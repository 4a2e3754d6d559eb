"""Reduced precision against float32 (--precision, util/device.py), measured: accuracy on trained
weights, and speed and peak memory in fresh processes.

--accuracy: one checkpoint on the val split of a DAVIS 2017-layout set (``DAVIS_ROOT/trainval``;
the quick start's held-out set, scripts/make_synthetic.py output), run by eval_davis.py's core
(inference_core/build.py: build_core) once per precision, the runs in lockstep frame by frame in
this process. Per video and over the set: J&F of each run (the built-in DAVIS evaluator's
formulas), their difference, the share of output pixels with the same label, and max|dp|, the
largest difference of any probability of any frame. Exit code 1 when a run is outside the bar
(|dJ&F| <= 0.002 and labels >= 99.9 % equal, the criterion the authors' code meets against
itself with two thread counts), 2 when it cannot start.

    python scripts/benchmark_precision.py --accuracy --model quickstart_out/saves/quickstart_300.pth \\
        --davis_path quickstart_out/data/eval --precisions fp32,bf16,fp16 [--memory_budget 20] [--device cpu]

--speed (the default): s/frame (time in ``core.step`` over a synthetic video, random-init network,
DAVIS 2017 settings, channels-last weights as the eval scripts) and the peak resident memory of
the process, for every key backbone x frame size x object count, each run in a fresh process,
the variants interleaved (fp32, bf16, fp32, ...), medians of --repeats; ratios are medians of the
ratios to the first variant's run of the same repeat. A variant is PRECISION[:LAYOUT[:STORE]]:
LAYOUT channels_last (the eval scripts') or nchw; STORE float32 (the core's memory) or reduced
(the memory kept in the reduced type, upcast on every read; the measurement behind the core's
choice). --measure key_encoder times ``encode_key`` per call instead (median of --calls calls
after one untimed call).

    python scripts/benchmark_precision.py --precisions fp32,bf16 --repeats 2 --frames 6
    python scripts/benchmark_precision.py --precisions bf16:channels_last:float32,bf16:channels_last:reduced \\
        --backbones resnet18 --sizes 480x854 --objects 2 --frames 25 --mem_every 1 --memory_budget 20
    python scripts/benchmark_precision.py --measure key_encoder --precisions fp32:channels_last,fp32:nchw
"""
import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from scripts.benchmark_inference import cpu_model, load  # noqa: E402

JF_BAR, AGREEMENT_BAR = 0.002, 0.999
FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni", "avx2")


def cpu_description():
    """The CPU's model name and which of the flags that matter here it has."""
    from util.device import cpu_flags

    flags = cpu_flags()
    return f"{cpu_model()} (" + ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in FLAGS) + ")"


# ---------------------------------------------------------------------------------------------- accuracy
def video_scores(gt, labels):
    """(ObjectScores, J&F) of one video's label maps (T, H, W) against the ground truth."""
    import numpy as np

    from util.davis_metrics import DavisResult, ObjectScore, evaluate_sequence, object_statistics

    j, f = evaluate_sequence(np.stack(gt), np.stack(labels))
    objects = [ObjectScore(str(k + 1), j[k], f[k], object_statistics(j[k]), object_statistics(f[k]))
               for k in range(len(j))]
    return objects, DavisResult(objects).global_table["J&F-Mean"]


def compare_video(first, second, spec, gt_dir):
    """Two cores over one video in lockstep (each reads its own frames): {objects and J&F of each,
    pixels with the same label, pixels, max_dp, frames}."""
    from inference_core.data.objects import load_objects
    from inference_core.video_runner import VideoFrames, given_objects, output_labels
    from util.palette import load_annotation

    objects = load_objects(spec)
    outputs = spec.output_names()
    labels, same, total, max_dp = ([], []), 0, 0, 0.0
    with spec.frames.reader() as reader_a, spec.frames.reader() as reader_b:
        runs = [core.run(VideoFrames(reader, spec.frames, objects.size, objects.size, core.device),
                         given_objects(objects, objects.size, core.device), outputs=set(outputs))
                for core, reader in ((first, reader_a), (second, reader_b))]
        for a, b in zip(*runs):
            max_dp = max(max_dp, (a.prob - b.prob).abs().max().item())
            maps = [output_labels(r.prob, a.index, objects) for r in (a, b)]
            labels[0].append(maps[0])
            labels[1].append(maps[1])
            same, total = same + int((maps[0] == maps[1]).sum()), total + maps[0].size
    gt = [load_annotation(os.path.join(gt_dir, outputs[t])) for t in sorted(outputs)]
    scored = [video_scores(gt, run) for run in labels]
    return dict(objects=[s[0] for s in scored], j_and_f=[s[1] for s in scored], same=same, total=total,
                max_dp=max_dp, frames=len(labels[0]))


def accuracy(args):
    from inference_core.build import build_core
    from inference_core.data.readers import DavisSet
    from util.config import PRESETS
    from util.davis_metrics import DavisResult

    precisions = args.precisions.split(",")
    config = PRESETS["davis2017"].replace(memory_budget=args.memory_budget)
    dataset = DavisSet(os.path.join(args.davis_path, "trainval"), "2017", "val")
    cores = [build_core(args.model, config.replace(precision=p), args.device) for p in precisions]
    print(f"{args.model} on {args.davis_path} (val, {len(dataset.names)} videos), DAVIS 2017 settings"
          f"{f', memory budget {args.memory_budget}' if args.memory_budget else ''}; {cores[0].device} "
          f"({cpu_description()}); load {load():.2f}", flush=True)
    rows = []
    for i in range(1, len(precisions)):
        (first, a), (second, b) = (precisions[0], cores[0]), (precisions[i], cores[i])
        everything = dict(objects=[[], []], same=0, total=0, frames=0)
        for name in dataset.names:
            start = time.perf_counter()
            r = compare_video(a, b, dataset.video(name), os.path.join(dataset.root, "Annotations", "480p", name))
            rows.append(dict(video=name, first=first, second=second, frames=r["frames"], j_and_f=r["j_and_f"],
                             agreement=r["same"] / r["total"], max_dp=r["max_dp"]))
            for k in range(2):
                everything["objects"][k] += r["objects"][k]
            for key in ("same", "total", "frames"):
                everything[key] += r[key]
            print(f"{name} {first}/{second}: {r['frames']} frames, J&F {r['j_and_f'][0]:.4f} / "
                  f"{r['j_and_f'][1]:.4f}, labels {100 * rows[-1]['agreement']:.3f} %, max|dp| {r['max_dp']:.2e} "
                  f"({time.perf_counter() - start:.0f} s, load {load():.2f})", flush=True)
        jf = [DavisResult(objects).global_table["J&F-Mean"] for objects in everything["objects"]]
        rows.append(dict(video="all", first=first, second=second, frames=everything["frames"], j_and_f=jf,
                         agreement=everything["same"] / everything["total"],
                         max_dp=max(r["max_dp"] for r in rows if (r["first"], r["second"]) == (first, second))))
    print("\n| video | frames | runs | J&F first | J&F second | dJ&F | labels equal | max abs dp | within the bar |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in rows:
        within = abs(r["j_and_f"][1] - r["j_and_f"][0]) <= JF_BAR and r["agreement"] >= AGREEMENT_BAR
        ok &= within
        print(f"| {r['video']} | {r['frames']} | {r['first']} / {r['second']} | {r['j_and_f'][0]:.4f} | "
              f"{r['j_and_f'][1]:.4f} | {r['j_and_f'][1] - r['j_and_f'][0]:+.4f} | {100 * r['agreement']:.3f} % | "
              f"{r['max_dp']:.2e} | {'yes' if within else '**no**'} |")
    print(f"(labels: share of all output pixels; J&F of 'all': over all objects of the set, as the DAVIS "
          f"evaluator; bar |dJ&F| <= {JF_BAR}, labels >= {100 * AGREEMENT_BAR:g} %; load {load():.2f} at end)")
    return rows, 0 if ok else 1


# ------------------------------------------------------------------------------------------- speed
def parse_variant(text):
    """PRECISION[:LAYOUT[:STORE]] -> (precision, layout, store)."""
    parts = text.split(":") + [None, None]
    precision, layout, store = parts[0], parts[1] or "channels_last", parts[2] or "float32"
    if precision not in ("fp32", "bf16", "fp16", "auto") or layout not in ("channels_last", "nchw") \
            or store not in ("float32", "reduced"):
        raise ValueError(f"variant {text!r}: expected PRECISION[:channels_last|nchw[:float32|reduced]]")
    return precision, layout, store


def run_child(args):
    """One timed run in this process; prints one JSON line."""
    import torch

    from inference_core.core import InferenceCore
    from model.network import IMSFR
    from scripts.benchmark_inference import run_video, synthetic_video
    from util.config import PRESETS
    from util.tensor_util import pad_divide_by

    backbone, size, objects, variant = args.child
    precision, layout, store = parse_variant(variant)
    height, width = (int(n) for n in size.split("x"))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    network = IMSFR(pretrained=False, key_backbone=backbone).eval()
    if layout == "channels_last":
        network.to(memory_format=torch.channels_last)
    config = PRESETS["davis2017"].replace(precision=precision, memory_budget=args.memory_budget,
                                          mem_every=args.mem_every or PRESETS["davis2017"].mem_every)
    core = InferenceCore(network, config, "cpu")
    if store == "reduced":  # the memory as computed (the reduced type), upcast by every read
        core._stored = lambda tensor: tensor
    frames, mask = synthetic_video(args.frames, height, width, int(objects), "cpu")
    if args.measure == "key_encoder":
        frame, _ = pad_divide_by(frames[0].unsqueeze(0))
        times = []
        with torch.inference_mode(), core.autocast():
            for _ in range(args.calls + 1):
                start = time.perf_counter()
                core.backend.encode_key(frame)
                times.append(time.perf_counter() - start)
        seconds = statistics.median(times[1:])
    else:
        total, _, processed = run_video(core, frames, {0: (mask, list(range(1, int(objects) + 1)))})
        seconds = total / processed
    print(json.dumps(dict(seconds=seconds, held_mib=core.held_bytes() / 2**20)))


def measure(command):
    """(stdout, peak resident MiB) of ``command`` in a fresh process."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.stdout.close()
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(command)} exited with {os.waitstatus_to_exitcode(status)}:\n{out}")
    return out, usage.ru_maxrss / 2**10


def speed(args):
    variants = args.precisions.split(",")
    for v in variants:
        parse_variant(v)
    rows = []
    what = "s/call (key encoder)" if args.measure == "key_encoder" else "s/frame"
    for backbone, size, objects in itertools.product(args.backbones.split(","), args.sizes.split(","),
                                                     args.objects.split(",")):
        runs = {v: [] for v in variants}
        for _ in range(args.repeats):
            for v in variants:
                command = [sys.executable, os.path.abspath(__file__), "--child", backbone, size, objects, v,
                           "--frames", str(args.frames), "--threads", str(args.threads), "--measure", args.measure,
                           "--calls", str(args.calls), "--mem_every", str(args.mem_every or 0)]
                if args.memory_budget:
                    command += ["--memory_budget", str(args.memory_budget)]
                before = load()
                out, peak = measure(command)
                runs[v].append(dict(json.loads(out.strip().splitlines()[-1]), peak_rss_mib=peak, load=[before, load()]))
                print(f"{backbone} {size} {objects} object(s) {v}: {runs[v][-1]}", flush=True)
        for v in variants:
            ratio = {name: statistics.median(r[name] / f[name] for r, f in zip(runs[v], runs[variants[0]]))
                     for name in ("seconds", "peak_rss_mib")}
            rows.append(dict(backbone=backbone, size=size, objects=int(objects), variant=v, runs=runs[v],
                             seconds=statistics.median(r["seconds"] for r in runs[v]),
                             peak_rss_mib=statistics.median(r["peak_rss_mib"] for r in runs[v]),
                             time_ratio=ratio["seconds"], rss_ratio=ratio["peak_rss_mib"],
                             loads=[x for r in runs[v] for x in r["load"]]))
    print(f"\n{args.frames}-frame synthetic videos, DAVIS 2017 settings{f', mem_every {args.mem_every}' if args.mem_every else ''}"
          f"{f', memory budget {args.memory_budget}' if args.memory_budget else ''}, {args.threads} threads, "
          f"random-init network; medians of {args.repeats} interleaved runs, each in a fresh process; "
          f"{cpu_description()}\n")
    print(f"| key backbone | frame | objects | variant | {what} | peak RSS (MiB) | time / {variants[0]} | "
          f"RSS / {variants[0]} | load (1 min) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['size']} | {r['objects']} | {r['variant']} | {r['seconds']:.3f} | "
              f"{r['peak_rss_mib']:.0f} | {r['time_ratio']:.3f} | {r['rss_ratio']:.3f} | "
              f"{min(r['loads']):.1f}-{max(r['loads']):.1f} |")
    return rows, 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accuracy", action="store_true", help="the accuracy comparison (needs --model, --davis_path)")
    parser.add_argument("--model", help="--accuracy: the checkpoint")
    parser.add_argument("--davis_path", help="--accuracy: a DAVIS 2017 root holding trainval/")
    parser.add_argument("--device", default=None, help="--accuracy: cpu or cuda (default: CUDA when present)")
    parser.add_argument("--precisions", default="fp32,bf16",
                        help="runs (--accuracy: precisions, the first against each other; --speed: variants "
                             "PRECISION[:LAYOUT[:STORE]], ratios to the first; default: %(default)s)")
    parser.add_argument("--memory_budget", type=int, default=None, help="memory budget of the runs (default: none)")
    parser.add_argument("--mem_every", type=int, default=None, help="--speed: memorise every N-th frame (default: 6)")
    parser.add_argument("--backbones", default="resnet18,resnet101", help="--speed (default: %(default)s)")
    parser.add_argument("--sizes", default="240x432,480x854", help="--speed: frames HxW (default: %(default)s)")
    parser.add_argument("--objects", default="1,2", help="--speed: object counts (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=6, help="--speed: frames per video (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="--speed: interleaved runs (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="--speed: torch threads (default: %(default)s)")
    parser.add_argument("--measure", choices=("video", "key_encoder"), default="video", help="--speed: what is timed")
    parser.add_argument("--calls", type=int, default=3, help="--measure key_encoder: timed calls (default: %(default)s)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument("--child", nargs=4, metavar=("BACKBONE", "HxW", "OBJECTS", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return run_child(args)
    try:
        if args.accuracy:
            if not (args.model and args.davis_path):
                raise ValueError("--accuracy needs --model and --davis_path")
            if not os.path.isdir(os.path.join(args.davis_path, "trainval")):
                raise ValueError(f"--davis_path {args.davis_path}: no trainval/ folder")
            rows, code = accuracy(args)
        else:
            rows, code = speed(args)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(command=sys.argv, cpu=cpu_description(), rows=rows), f, indent=1, default=str)
    return code


if __name__ == "__main__":
    sys.exit(main())
