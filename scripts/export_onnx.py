"""Export the network's three calls to ONNX (docs/deployment.md) and check them against PyTorch.

    python scripts/export_onnx.py --model saves/imsfr.pth --output onnx/
    python scripts/export_onnx.py --model saves/imsfr.pth --output onnx_int8/ --quantize int8 --calibration clips/
    python eval_davis.py --model saves/imsfr.pth --backend onnxruntime --onnx onnx/ --output results/d17_val

Writes <output>/key_encoder.onnx, value_encoder.onnx, segment.onnx and manifest.json (opset,
input and output names and shapes, the checkpoint's SHA-256, the project version), then runs
each graph in ONNX Runtime next to the PyTorch backend on random inputs (two frame sizes, 1 and
3 objects, 1 and 12 memory frames) and prints the largest absolute and relative errors; the
manifest records them ("parity"). Exit code 1 when an error exceeds --tolerance (relative).

--quantize int8: the float32 graphs are checked, run over the first --calibration_frames frames
of the first --calibration_videos videos of --calibration (DIR/JPEGImages/<video>/ with
DIR/Annotations/<video>/, or a DAVIS root's JPEGImages/480p/ and Annotations/480p/), and every
graph is quantised to int8 (ONNX Runtime's static quantisation, QDQ) with the inputs they
received; the int8 graphs replace the float32 ones and the manifest records it
("quantization"). Its check: the same videos with both, labels equal on at least
--min_agreement of the pixels (else exit code 1).

Bad flags or inputs: one line on stderr and exit code 2 before anything is written. The files
appear in --output only when the export is complete (written in a temporary folder inside it).
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from inference_core.onnx_backend import OnnxBackend, OnnxError  # noqa: E402
from inference_core.onnx_export import (GRAPH_FILES, INT8, MANIFEST, export_onnx, file_sha256,  # noqa: E402
                                        parity_table, quantize_graph)
from model.checkpoint import CheckpointError, build_network  # noqa: E402
from util.fileio import atomic_write_text  # noqa: E402

MIN_OPSET = 18  # torch.onnx.export(dynamo=True) writes opset 18 and later
INT8_FLAGS = ("calibration", "calibration_videos", "calibration_frames", "min_agreement")
INT8_DEFAULTS = (6, 8, 0.99)  # --calibration_videos, --calibration_frames, --min_agreement


class UsageError(ValueError):
    """A flag or input that cannot work; the message (one line) names it."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's usage block + message: one line instead
        print(f"error: scripts/export_onnx.py: {message} (--help lists the flags)", file=sys.stderr)
        sys.exit(2)


def parse_args(argv=None):
    parser = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="network weights (state dict or training checkpoint)")
    parser.add_argument("--output", required=True, help="folder for the graphs and manifest.json")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's recommended)")
    parser.add_argument("--no_check", action="store_true", help="skip the checks (parity with PyTorch, int8)")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest relative error of the parity check (default: %(default)s)")
    parser.add_argument("--quantize", choices=("int8",), help="write int8 graphs (static quantisation, QDQ)")
    parser.add_argument("--calibration", metavar="DIR", help="with --quantize: the videos to calibrate on")
    parser.add_argument("--calibration_videos", type=int,
                        help=f"calibrate on the first N videos of --calibration (default: {INT8_DEFAULTS[0]})")
    parser.add_argument("--calibration_frames", type=int,
                        help=f"... and their first N frames (default: {INT8_DEFAULTS[1]})")
    parser.add_argument("--min_agreement", type=float,
                        help=f"int8 check: share of pixels labelled as by float32 (default: {INT8_DEFAULTS[2]})")
    return parser.parse_args(argv)


def check_flags(args):
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if args.opset is not None and not MIN_OPSET <= args.opset <= newest:
        raise UsageError(f"--opset {args.opset}: the exporter writes opsets {MIN_OPSET} to {newest} (the installed "
                         f"onnx's newest)")
    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):
        raise UsageError(f"--tolerance {args.tolerance}: must be a number >= 0")
    if args.quantize is None:
        given = [flag for flag in INT8_FLAGS if getattr(args, flag) is not None]
        if given:
            raise UsageError(f"--{given[0]} goes with --quantize int8")
        return
    for flag, default in zip(INT8_FLAGS[1:], INT8_DEFAULTS):
        if getattr(args, flag) is None:
            setattr(args, flag, default)
    if args.calibration is None:
        raise UsageError("--quantize int8 needs --calibration DIR (videos whose first frames calibrate the graphs)")
    if args.calibration_videos < 1 or args.calibration_frames < 2:
        raise UsageError(f"--calibration_videos {args.calibration_videos} --calibration_frames "
                         f"{args.calibration_frames}: at least 1 video of at least 2 frames")
    if not 0 <= args.min_agreement <= 1:
        raise UsageError(f"--min_agreement {args.min_agreement}: must be between 0 and 1")


def check_output(output):
    """--output must be a folder or a path one can create a folder at."""
    path = os.path.abspath(output)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--output {output}: is a file, not a folder")
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--output {output}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--output {output}: cannot write in {existing} (permission denied or read-only)")


def read_calibration(folder, videos, frames):
    """[(name, [uint8 (H, W, 3) frames], given)] of the first ``frames`` frames of the first
    ``videos`` videos of ``folder`` (given: the core's {t: (mask, new ids)})."""
    from inference_core.data import SequenceError
    from inference_core.data.objects import load_objects
    from inference_core.data.readers import folder_video
    from util.palette import AnnotationError
    from inference_core.video_runner import given_objects

    davis = ("480p",) if os.path.isdir(os.path.join(folder, "JPEGImages", "480p")) else ()
    images, masks = (os.path.join(folder, part, *davis) for part in ("JPEGImages", "Annotations"))
    if not os.path.isdir(images):
        raise UsageError(f"--calibration {folder}: no JPEGImages/ folder of videos in it")
    names = sorted(d for d in os.listdir(images) if os.path.isdir(os.path.join(images, d)))[:videos]
    if not names:
        raise UsageError(f"--calibration {folder}: {images} holds no video folders")
    clips = []
    try:
        for name in names:
            spec = folder_video(name, os.path.join(images, name), os.path.join(masks, name))
            objects = load_objects(spec)
            count = min(frames, len(spec.frames))
            given = {t: g for t, g in given_objects(objects, objects.size, "cpu").items() if t < count}
            if 0 not in given:
                raise UsageError(f"--calibration: {spec.annotation_paths[min(spec.annotation_paths)]}: objects must "
                                 f"be given in the first frame of a calibration video")
            with spec.frames.reader() as reader:
                clip = [reader.read(t) for t in range(count)]
            for t, image in enumerate(clip):
                if image.shape[:2] != objects.size:
                    raise UsageError(f"--calibration: {spec.frames.where(t)}: frame is {image.shape[1]}x"
                                     f"{image.shape[0]} (WxH), the video {objects.size[1]}x{objects.size[0]}")
            clips.append((name, clip, given))
    except (SequenceError, AnnotationError, OSError) as error:
        raise UsageError(f"--calibration: {error}") from None
    return clips


def run_clips(backend, clips):
    """Per-frame probabilities of the calibration clips through ``backend`` (DAVIS 2017 settings)."""
    from inference_core.core import InferenceCore
    from inference_core.video_runner import frame_tensor
    from util.config import PRESETS

    probabilities = []
    for _, clip, given in clips:
        frames = [frame_tensor(image, image.shape[:2], "cpu") for image in clip]
        core = InferenceCore(backend, PRESETS["davis2017"], "cpu")
        probabilities += [result.prob for result in core.run(frames, given)]
    return probabilities


def parity_check(network, folder, args, manifest):
    """The float32 graphs against PyTorch: prints the table, records it; returns the largest error."""
    backend = OnnxBackend(folder, "cpu", checkpoint=args.model)
    rows = parity_table(network, backend.sessions)
    print("\n| graph | output | frame, objects, memory frames, top_k | max abs error | max rel error |")
    print("|---|---|---|---|---|")
    for graph, output, ((h, w), k, t, top_k), error, relative in rows:
        print(f"| {graph} | {output} | {h}x{w}, {k}, {t}, {top_k} | {error:.2e} | {relative:.2e} |")
    worst = max(relative for *_, relative in rows)
    manifest["parity"] = dict(max_abs_error=max(r[3] for r in rows), max_rel_error=worst,
                              relative_to="the largest |PyTorch output| of each output", torch=torch.__version__)
    print(f"\nlargest relative error {worst:.2e} (tolerance {args.tolerance:g})")
    return worst


def quantize(folder, args, manifest, clips):
    """Replace the float32 graphs in ``folder`` by int8 ones calibrated on ``clips``; returns the
    share of pixels labelled the same (None with --no_check)."""
    start = time.perf_counter()
    backend = OnnxBackend(folder, "cpu")
    backend.recorded = {graph: [] for graph in GRAPH_FILES}
    expected = run_clips(backend, clips)
    for graph, filename in GRAPH_FILES.items():
        path = os.path.join(folder, filename)
        quantize_graph(path, path + ".int8", backend.recorded[graph])
        os.replace(path + ".int8", path)
        manifest["graphs"][graph]["sha256"] = file_sha256(path)
        print(f"{filename}: int8, {os.path.getsize(path) / 2**20:.1f} MiB ({len(backend.recorded[graph])} "
              f"calibration inputs)")
    manifest["quantization"] = dict(INT8, graphs=list(GRAPH_FILES), calibration=dict(
        folder=os.path.abspath(args.calibration), videos=[name for name, _, _ in clips],
        frames=[len(clip) for _, clip, _ in clips], inputs={g: len(f) for g, f in backend.recorded.items()}),
        seconds=round(time.perf_counter() - start, 2))
    atomic_write_text(os.path.join(folder, MANIFEST), json.dumps(manifest, indent=2) + "\n")
    print(f"quantised in {time.perf_counter() - start:.1f} s")
    if args.no_check:
        return None
    got = run_clips(OnnxBackend(folder, "cpu"), clips)
    same = sum(int((a.argmax(0) == b.argmax(0)).sum()) for a, b in zip(expected, got))
    agreement = same / sum(a[0].numel() for a in expected)
    largest = max((a - b).abs().max().item() for a, b in zip(expected, got))
    manifest["quantization"]["check"] = dict(label_agreement=agreement, max_abs_probability_difference=largest,
                                             against="the float32 graphs on the calibration frames")
    print(f"int8 against float32 on the calibration frames: labels equal on {100 * agreement:.3f} % of the pixels, "
          f"max |dp| {largest:.4f} (at least {100 * args.min_agreement:g} %)")
    return agreement


def publish(work, output):
    """Move the finished export from ``work`` into ``output``: the graphs, then the manifest."""
    for filename in (*GRAPH_FILES.values(), MANIFEST):
        os.replace(os.path.join(work, filename), os.path.join(output, filename))


def remove_empty(output, created):
    """Remove the folders from ``output`` up to ``created`` (the topmost one this run made) while empty."""
    folder = os.path.abspath(output)
    while created and os.path.isdir(folder) and not os.listdir(folder):
        os.rmdir(folder)
        if folder == created:
            break
        folder = os.path.dirname(folder)


def main(argv=None):
    args = parse_args(argv)
    try:
        check_flags(args)
        check_output(args.output)
        clips = read_calibration(args.calibration, args.calibration_videos,
                                 args.calibration_frames) if args.quantize else None
        network = build_network(args.model, "cpu")
    except (UsageError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    created = os.path.abspath(args.output)  # the topmost folder this run creates (removed again on failure)
    while not os.path.exists(os.path.dirname(created)):
        created = os.path.dirname(created)
    created = None if os.path.exists(created) else created
    try:
        os.makedirs(args.output, exist_ok=True)
        work = tempfile.mkdtemp(prefix=".export-", dir=args.output)
    except OSError as error:
        print(f"error: --output {args.output}: cannot create the folder or write in it "
              f"({error.strerror or error})", file=sys.stderr)
        remove_empty(args.output, created)
        return 2
    try:
        start = time.perf_counter()
        manifest = export_onnx(network, work, checkpoint=args.model, opset=args.opset)
        print(f"exported the graphs (opset {manifest['opset']}) in {time.perf_counter() - start:.1f} s")
        ok = True
        if not args.no_check:
            ok = parity_check(network, work, args, manifest) <= args.tolerance
        atomic_write_text(os.path.join(work, MANIFEST), json.dumps(manifest, indent=2) + "\n")
        if args.quantize:
            agreement = quantize(work, args, manifest, clips)
            ok = ok and (agreement is None or agreement >= args.min_agreement)
            atomic_write_text(os.path.join(work, MANIFEST), json.dumps(manifest, indent=2) + "\n")
        publish(work, args.output)
    except (OnnxError, OSError, RuntimeError, ValueError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        print(f"error: the export failed, nothing written to {args.output} ({reason})", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        remove_empty(args.output, created)
    print(f"wrote {args.output} ({'int8' if args.quantize else 'float32'}, opset {manifest['opset']})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
