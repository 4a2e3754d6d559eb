"""Seconds per training iteration and peak memory of the full training step
(forward, loss, backward, Adam) on random data, one process.

    python scripts/benchmark_train.py --device cuda --amp
    python scripts/benchmark_train.py --device cpu --key_backbone resnet18 --iterations 3
"""
import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import progressbar  # noqa: E402
import torch  # noqa: E402

from model.network import IMSFR  # noqa: E402
from training.trainer import Trainer  # noqa: E402
from util.config import STAGE_DEFAULTS, TRAIN_COMMON  # noqa: E402
from util.device import amp_available, pick_device, synchronize  # noqa: E402


def random_batch(batch_size, size, device, generator):
    """A batch shaped like the VOS datasets' (two objects, both present)."""
    labels = torch.randint(0, 3, (batch_size, 3, size, size), generator=generator)
    return {
        "rgb": torch.randn(batch_size, 3, 3, size, size, generator=generator).to(device),
        "gt": (labels == 1).float().unsqueeze(2).to(device),
        "sec_gt": (labels == 2).float().unsqueeze(2).to(device),
        "cls_gt": labels.to(device),
        "selector": torch.ones(batch_size, 2, device=device),
    }


def peak_memory_text(device):
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB GPU (max allocated)"
    # ru_maxrss is in KiB on Linux: the process's peak resident memory.
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RAM (peak RSS)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--amp", dest="amp", action="store_const", const=True, default=None,
                        help="mixed precision (CUDA only; default on CUDA)")
    parser.add_argument("--no_amp", dest="amp", action="store_const", const=False)
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--batch_size", type=int, default=STAGE_DEFAULTS[3]["batch_size"])
    parser.add_argument("--crop_size", type=int, default=TRAIN_COMMON["crop_size"])
    parser.add_argument("--key_backbone", choices=("resnet101", "resnet50", "resnet18"), default="resnet101")
    args = parser.parse_args(argv)
    if min(args.iterations, args.batch_size, args.crop_size) < 1 or args.warmup < 0:
        parser.error("--iterations, --batch_size and --crop_size must be positive, --warmup >= 0")
    try:
        device = pick_device(args.device)
    except RuntimeError as error:
        parser.error(str(error))
    amp = amp_available(device) if args.amp is None else args.amp
    if amp and not amp_available(device):
        parser.error("--amp needs a CUDA device")

    torch.manual_seed(0)
    network = IMSFR(single_object=False, pretrained=False, key_backbone=args.key_backbone)
    trainer = Trainer(network, device, lr=1e-5, steps=[10**9], amp=amp)
    batch = random_batch(args.batch_size, args.crop_size, device, torch.Generator().manual_seed(0))

    for i in range(args.warmup):
        trainer.step(batch, i)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for i in progressbar.progressbar(range(args.iterations), redirect_stdout=False):
        start = time.perf_counter()
        trainer.step(batch, args.warmup + i)
        synchronize(device)
        times.append(time.perf_counter() - start)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {name}, key backbone {args.key_backbone}, batch {args.batch_size} x 3 frames, "
          f"{args.crop_size}x{args.crop_size}, AMP {'on' if amp else 'off'}")
    print(f"seconds per iteration: mean {sum(times) / len(times):.3f}, min {min(times):.3f} "
          f"({args.iterations} timed after {args.warmup} warm-up)")
    print(f"peak memory: {peak_memory_text(device)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
