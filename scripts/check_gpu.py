"""The CUDA path checked in one command; prints one table (docs/speed.md, "CUDA").

    python scripts/check_gpu.py [--model saves/imsfr.pth] [--device cuda:0] [--json gpu.json]

Rows (a random-init ResNet-101-key network unless --model; the accuracy rows mean more with
trained weights: a random network's near-even probabilities flip labels at the smallest change):

* CUDA fp32 against CPU fp32 on a synthetic clip (--clip FRAMES H W, 2 objects): label
  agreement and max|dp| over every frame, the runs in lockstep;
* CUDA --precision auto (fp16) against CUDA fp32 on the same clip, the same figures;
* s/frame at 480x854 for 1, 2 and 4 objects, baseline against optimised, fp32 and auto
  (scripts/benchmark_inference.py, --speed_frames frames, 2 interleaved repeats);
* frames per second of eval_davis.py (DAVIS 2017 settings) on a synthetic DAVIS set at 480x854
  (--davis SEQUENCES FRAMES), fp32 and auto;
* 3 training iterations of train.py under torchrun (one process on the GPU), and a one-rank
  NCCL all_reduce;
* ONNX Runtime's CUDA execution provider, where installed: this network exported, against
  PyTorch CUDA fp32 on the clip, and its s/frame.

Without CUDA it prints one line and exits 0. Exit code 1 when a check fails (its row says why).
"""
import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

from util.config import PRESETS  # noqa: E402

NO_CUDA = "no CUDA device: nothing to check (scripts/check_gpu.py measures the CUDA path only)"


def synthetic_clip(folder, frames=12, size=(240, 432), objects=2, seed=0):
    """(frames: [(3, H, W) normalised CPU tensors], given: {0: (mask, ids)}) of a synthetic video
    with exactly ``objects`` objects (dataset/synthetic.py)."""
    import numpy as np
    from PIL import Image

    from dataset.synthetic import make_davis_dataset
    from inference_core.video_runner import frame_tensor
    from util.palette import load_annotation

    for attempt in range(50):  # the generator draws 1..max objects per video: the first with all of them
        name = make_davis_dataset(folder, num_sequences=1, num_frames=frames, size=size, max_objects=objects,
                                  seed=seed + attempt, splits=("val",))["val"][0]
        mask = load_annotation(os.path.join(folder, "Annotations", "480p", name, "00000.png"))
        if int(mask.max()) == objects:
            break
    images = sorted(os.listdir(os.path.join(folder, "JPEGImages", "480p", name)))
    clip = [frame_tensor(np.array(Image.open(os.path.join(folder, "JPEGImages", "480p", name, f))), size, "cpu")
            for f in images]
    return clip, {0: (torch.from_numpy(mask.astype(np.int64)), list(range(1, objects + 1)))}


def compare_cores(first, second, frames, given):
    """Two cores over one video in lockstep: {label_agreement, max_dp, frames, seconds: [each]}
    (labels: argmax of the probabilities, every pixel of every frame)."""
    same = total = 0
    max_dp, seconds = 0.0, [0.0, 0.0]
    for a, b in zip(first.run(frames, given, timed=True), second.run(frames, given, timed=True)):
        pa, pb = a.prob.float().cpu(), b.prob.float().cpu()
        max_dp = max(max_dp, (pa - pb).abs().max().item())
        same += int((pa.argmax(0) == pb.argmax(0)).sum())
        total += pa[0].numel()
        seconds = [seconds[0] + a.seconds, seconds[1] + b.seconds]
    return dict(label_agreement=same / total, max_dp=max_dp, frames=len(frames), seconds=seconds)


def describe(comparison):
    return (f"labels {100 * comparison['label_agreement']:.3f} % equal, max|dp| {comparison['max_dp']:.2e} "
            f"({comparison['frames']} frames)")


def make_network(model, device):
    from model.checkpoint import build_network
    from model.network import IMSFR

    if model:
        network = build_network(model, device)
    else:
        torch.manual_seed(0)
        network = IMSFR(pretrained=False).to(device).eval()
    return network.to(memory_format=torch.channels_last)  # as the eval scripts (inference_core/build.py)


def core(network, device, precision="fp32"):
    from inference_core.core import InferenceCore

    return InferenceCore(network, PRESETS["davis2017"].replace(precision=precision), device)


def fps_of(output):
    """The overall FPS an eval script printed (its 'Processed ... : X FPS' line)."""
    found = re.findall(r"Processed .*: ([0-9.]+) FPS", output)
    if not found:
        raise ValueError("no FPS line in the script's output")
    return float(found[-1])


def eval_davis_fps(weights, folder, device, sequences, frames, precision, size=(480, 854)):
    """FPS of eval_davis.py on a synthetic DAVIS 2017 val set of ``size`` (made once in ``folder``)."""
    from dataset.synthetic import make_davis_dataset

    root = os.path.join(folder, "davis")
    if not os.path.isdir(root):
        make_davis_dataset(os.path.join(root, "trainval"), num_sequences=sequences, num_frames=frames,
                           size=size, splits=("val",))
    # As a user runs it: its own process (and its own progress bar on its own streams).
    done = subprocess.run([sys.executable, os.path.join(ROOT, "eval_davis.py"), "--model", weights, "--davis_path",
                           root, "--output", os.path.join(folder, precision), "--device", str(device), "--no_eval",
                           "--overwrite", "--precision", precision], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"eval_davis.py exited with {done.returncode}: {done.stderr.strip()[-300:]}")
    return fps_of(done.stdout)


def train_command(folder, iterations=3):
    """torchrun (one process) running train.py for ``iterations`` on a synthetic DAVIS set."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
            os.path.join(ROOT, "train.py"), "--stage", "3", "--id", "gpucheck", "--main_data", "davis",
            "--davis_root", os.path.join(folder, "train"), "--no_subset", "--key_backbone", "resnet18",
            "--no_pretrained", "--train_bn", "--crop_size", "96", "--batch_size", "2", "--iterations",
            str(iterations), "--steps", str(iterations), "--num_workers", "0", "--save_dir",
            os.path.join(folder, "saves"), "--log_dir", os.path.join(folder, "runs"), "--log_every", "1"]


def torchrun_training(folder, iterations=3):
    from dataset.synthetic import make_davis_dataset

    make_davis_dataset(os.path.join(folder, "train"), num_sequences=4, num_frames=8, size=(96, 160),
                       splits=("train",))
    start = time.perf_counter()
    done = subprocess.run(train_command(folder, iterations), cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"torchrun train.py exited with {done.returncode}: {done.stderr.strip()[-300:]}")
    saved = os.path.join(folder, "saves", f"gpucheck_{iterations}.pth")
    if not os.path.isfile(saved):
        raise RuntimeError(f"torchrun train.py wrote no {saved}")
    return f"{iterations} iterations in {time.perf_counter() - start:.0f} s (process start included), {saved} written"


def nccl_all_reduce(device):
    """A one-rank NCCL process group's all_reduce (train.py joins NCCL only with 2+ processes)."""
    import torch.distributed as dist

    store = dist.HashStore()
    dist.init_process_group("nccl", store=store, rank=0, world_size=1, device_id=device)
    try:
        x = torch.ones(4, device=device)
        dist.all_reduce(x)
        torch.cuda.synchronize(device)
        return f"NCCL {torch.cuda.nccl.version()} all_reduce ok (1 rank)"
    finally:
        dist.destroy_process_group()


def onnx_cuda(network, folder, device, frames, given):
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime not installed"
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        return f"onnxruntime {onnxruntime.__version__} has no CUDA execution provider"
    from inference_core.core import InferenceCore
    from inference_core.onnx_backend import OnnxBackend
    from inference_core.onnx_export import export_onnx

    export_onnx(network, folder, log=None)
    ort = InferenceCore(OnnxBackend(folder, device), PRESETS["davis2017"], device)
    result = compare_cores(core(network, device), ort, frames, given)
    return (f"CUDA provider against PyTorch CUDA fp32: {describe(result)}; s/frame {result['seconds'][1] / len(frames):.3f} "
            f"(PyTorch {result['seconds'][0] / len(frames):.3f})")


def speed_rows(device, frames, model):
    """benchmark_inference.py at 480x854, 1/2/4 objects, baseline and optimised, fp32 and auto."""
    from scripts import benchmark_inference

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "speed.json")
        argv = ["--device", str(device), "--objects", "1,2,4", "--baseline_objects", "all", "--precision", "auto",
                "--frames", str(frames), "--repeats", "2", "--no_components", "--youtube_frames", "0", "--json", path]
        with contextlib.redirect_stdout(io.StringIO()):
            code = benchmark_inference.main(argv + (["--model", model] if model else []))
        if code:
            raise RuntimeError(f"benchmark_inference.py exited with {code}")
        with open(path) as f:
            result = json.load(f)
    return [(f"s/frame 480x854, {r['objects']} object(s), {r['precision']}",
             f"baseline {r['baseline']:.3f}, optimised {r['optimised']:.3f} (ratio {r['ratio']:.3f})")
            for r in result["per_frame"]]


def format_table(rows):
    lines = ["| check | result |", "|---|---|"]
    return "\n".join(lines + [f"| {name} | {result} |" for name, result in rows])


def check(rows, name, fn):
    """Append (name, fn()) to rows, or (name, 'FAILED: ...'); returns whether it passed."""
    try:
        result = fn()
    except Exception as error:  # one failing check must not hide the others
        rows.append((name, f"FAILED: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"))
        return False
    if isinstance(result, list):
        rows.extend(result)
    else:
        rows.append((name, result))
    return True


def run_checks(args, device):
    from util.device import inference_dtype, precision_name

    rows, ok = [], True
    props = torch.cuda.get_device_properties(device)
    rows.append(("device", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability "
                           f"{props.major}.{props.minor}; torch {torch.__version__}, CUDA {torch.version.cuda}, "
                           f"cuDNN {torch.backends.cudnn.version()}; auto = "
                           f"{precision_name(inference_dtype('auto', device))}"))
    with tempfile.TemporaryDirectory() as tmp:
        network = make_network(args.model, device)
        cpu_network = make_network(args.model, "cpu")
        weights = args.model or os.path.join(tmp, "weights.pth")
        if not args.model:
            torch.save(cpu_network.state_dict(), weights)
        frames, given = synthetic_clip(os.path.join(tmp, "clip"), args.clip[0], tuple(args.clip[1:]))
        ok &= check(rows, "CUDA fp32 against CPU fp32", lambda: describe(
            compare_cores(core(network, device), core(cpu_network, "cpu"), frames, given)))
        ok &= check(rows, "CUDA auto against CUDA fp32", lambda: describe(
            compare_cores(core(network, device), core(network, device, "auto"), frames, given)))
        ok &= check(rows, "s/frame", lambda: speed_rows(device, args.speed_frames, args.model))
        for precision in ("fp32", "auto"):
            ok &= check(rows, f"eval_davis.py FPS, {args.davis[0]} x {args.davis[1]} frames 480x854, {precision}",
                        lambda: f"{eval_davis_fps(weights, tmp, device, *args.davis, precision):.2f} FPS")
        ok &= check(rows, "torchrun train.py", lambda: torchrun_training(os.path.join(tmp, "train")))
        ok &= check(rows, "NCCL", lambda: nccl_all_reduce(device))
        ok &= check(rows, "ONNX Runtime CUDA", lambda: onnx_cuda(network, os.path.join(tmp, "onnx"), device,
                                                                  frames, given))
    return rows, ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="weights (default: a random-init ResNet-101-key network)")
    parser.add_argument("--device", default="cuda", help="the CUDA device (default: %(default)s)")
    parser.add_argument("--clip", type=int, nargs=3, default=(12, 240, 432), metavar=("FRAMES", "H", "W"),
                        help="the accuracy clip (default: 12 240 432)")
    parser.add_argument("--speed_frames", type=int, default=8, help="frames per timed video (default: %(default)s)")
    parser.add_argument("--davis", type=int, nargs=2, default=(3, 24), metavar=("SEQUENCES", "FRAMES"),
                        help="the synthetic DAVIS set of the FPS rows (default: 3 24)")
    parser.add_argument("--json", help="also write the table's rows to this JSON file")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_CUDA)
        return 0
    device = torch.device(args.device)
    if device.type != "cuda":
        print(f"error: --device {args.device} is not a CUDA device", file=sys.stderr)
        return 2
    if args.model and not os.path.isfile(args.model):
        print(f"error: --model {args.model}: no such file", file=sys.stderr)
        return 2
    rows, ok = run_checks(args, device)
    print(format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
