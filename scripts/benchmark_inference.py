"""Inference speed and memory of the network on a synthetic 2-object video.

Prints ms/frame (time in the inference core, synchronised on CUDA) and peak
memory (GPU: allocated by PyTorch; CPU: the process's peak resident size) for
a video of --frames frames at --height x --width (480p by default).

    python scripts/benchmark_inference.py --device cuda --amp
    python scripts/benchmark_inference.py --device cpu --frames 10 --backbone resnet18
"""
import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from inference_core.core import InferenceConfig, InferenceCore  # noqa: E402
from model.checkpoint import CheckpointError, build_network  # noqa: E402
from model.network import IMSFR  # noqa: E402
from util.config import EVAL_DEFAULTS  # noqa: E402
from util.device import amp_available, pick_device, synchronize  # noqa: E402


def synthetic_video(num_frames, height, width, device, seed=0):
    """Random normalised frames and a first-frame mask with two rectangles."""
    generator = torch.Generator().manual_seed(seed)
    frames = [torch.randn(3, height, width, generator=generator).to(device) for _ in range(num_frames)]
    mask = torch.zeros(height, width, dtype=torch.long)
    mask[height // 8:height // 2, width // 8:width // 2] = 1
    mask[height // 2:7 * height // 8, width // 2:7 * width // 8] = 2
    return frames, mask.to(device)


def run(core, frames, mask):
    """Seconds spent in core.step over the video."""
    core.start_video()
    synchronize(core.device)
    start = time.perf_counter()
    for t, frame in enumerate(frames):
        following = frames[t + 1] if t + 1 < len(frames) else None
        core.step(frame, following, mask=mask if t == 0 else None, new_objects=(1, 2) if t == 0 else ())
    synchronize(core.device)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="weights to load (default: random-init network)")
    parser.add_argument("--backbone", default="resnet101", choices=["resnet18", "resnet50", "resnet101"],
                        help="key encoder of the random-init network")
    parser.add_argument("--device", default=None)
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=854)
    parser.add_argument("--benchmark", default="davis2017", choices=sorted(EVAL_DEFAULTS),
                        help="memory/sampler settings to use")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames must be at least 2")
    try:
        device = pick_device(args.device)
        if args.model:
            network = build_network(args.model, device)
        else:
            network = IMSFR(pretrained=False, key_backbone=args.backbone).to(device).eval()
    except (CheckpointError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.amp and not amp_available(device):
        print(f"note: --amp has no effect on {device.type}")
    core = InferenceCore(network, InferenceConfig(**EVAL_DEFAULTS[args.benchmark], amp=args.amp), device)
    frames, mask = synthetic_video(args.frames, args.height, args.width, device)
    run(core, frames[:3], mask)  # warm-up: kernel selection, allocator
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = run(core, frames, mask)
    amp = "on" if core.use_amp else "off"
    print(f"device {device}, AMP {amp}, {args.frames} frames of {args.height}x{args.width}, 2 objects, "
          f"{args.benchmark} settings")
    print(f"{1000 * seconds / args.frames:.1f} ms/frame ({args.frames / seconds:.2f} FPS)")
    if device.type == "cuda":
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB allocated")
    else:
        print(f"peak process memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB resident")
    return 0


if __name__ == "__main__":
    sys.exit(main())
