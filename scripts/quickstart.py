"""Quick start: prove on CPU, in minutes, that the whole pipeline learns.

Generates a synthetic DAVIS-format training set and a separate held-out set,
trains with train.py's code path (stage 3 recipe on DAVIS-format data, with
reduced settings given as ordinary flags: ResNet-18 key encoder, no ImageNet
weights and so BatchNorm that learns its statistics, small crops, a short
schedule with a higher learning rate), segments the held-out set with
eval_davis.py's code path (inference core + built-in DAVIS evaluator), prints
the J&F table and writes an overlay of one sequence.

    python scripts/quickstart.py [--output quickstart_out] [--iterations 300] [--seed 0]
"""
import argparse
import csv
import glob
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import eval_davis  # noqa: E402
import train  # noqa: E402
from dataset.synthetic import make_davis_dataset  # noqa: E402
from util.fileio import load_frame  # noqa: E402
from util.overlay import write_overlay  # noqa: E402
from util.palette import load_annotation  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="quickstart_out", help="folder for data, weights, logs and results")
    parser.add_argument("--iterations", type=int, default=300, help="training iterations (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-4, help="higher than the paper's 1e-5: no ImageNet start")
    parser.add_argument("--crop_size", type=int, default=96, help="training crop (default: %(default)s)")
    parser.add_argument("--size", type=int, nargs=2, default=(96, 160), metavar=("H", "W"),
                        help="frame size of the synthetic videos (default: 96 160)")
    parser.add_argument("--frames", type=int, default=24, help="frames per synthetic video")
    parser.add_argument("--train_videos", type=int, default=30)
    parser.add_argument("--eval_videos", type=int, default=6)
    parser.add_argument("--key_backbone", default="resnet18", choices=("resnet18", "resnet50", "resnet101"))
    parser.add_argument("--seed", type=int, default=0, help="seeds the data, the training and the sampler")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--overlay", default="gif", choices=("gif", "strip", "mp4"))
    parser.add_argument("--num_workers", type=int, default=1)
    return parser.parse_args(argv)


def make_data(args):
    train_root = os.path.join(args.output, "data", "train")
    eval_root = os.path.join(args.output, "data", "eval")  # eval_davis.py reads <root>/trainval
    common = dict(num_frames=args.frames, size=tuple(args.size), max_objects=2)
    make_davis_dataset(train_root, num_sequences=args.train_videos, seed=args.seed, splits=("train",),
                       prefix="train", **common)
    make_davis_dataset(os.path.join(eval_root, "trainval"), num_sequences=args.eval_videos,
                       seed=args.seed + 10_000, splits=("val",), prefix="heldout", **common)
    return train_root, eval_root


def train_network(args, train_root):
    save_dir = os.path.join(args.output, "saves")
    steps = [max(1, int(args.iterations * 0.8))]
    # Synthetic videos are not in the reference's training list: --no_subset (ImageSets/2017/train.txt).
    argv = ["--stage", "3", "--id", "quickstart", "--main_data", "davis", "--davis_root", train_root, "--no_subset",
            # From scratch (no ImageNet weights), BatchNorm learns its statistics.
            "--key_backbone", args.key_backbone, "--no_pretrained", "--train_bn", "--crop_size", str(args.crop_size),
            "--batch_size", str(args.batch_size), "--iterations", str(args.iterations),
            "--steps", *map(str, steps), "--lr", str(args.lr), "--seed", str(args.seed),
            # bootstrapping over the second half of the short run, as over 20K-70K of 150K in the paper
            "--bootstrap_start", str(args.iterations // 3), "--bootstrap_end", str(args.iterations * 5 // 6),
            "--num_workers", str(args.num_workers), "--save_dir", save_dir,
            "--log_dir", os.path.join(args.output, "runs"), "--save_every", str(10 * args.iterations),
            "--log_every", str(max(1, args.iterations // 10))]
    if args.device:
        argv += ["--device", args.device]
    code = train.main(argv)
    if code != 0:
        raise SystemExit(f"training failed (exit code {code})")
    return os.path.join(save_dir, f"quickstart_{args.iterations}.pth")


def evaluate(args, weights, eval_root):
    results = os.path.join(args.output, "results")
    argv = ["--model", weights, "--davis_path", eval_root, "--output", results, "--seed", str(args.seed),
            "--overwrite", "--eval_workers", "1"]
    if args.device:
        argv += ["--device", args.device]
    code = eval_davis.main(argv)
    if code != 0:
        raise SystemExit(f"evaluation failed (exit code {code})")
    with open(os.path.join(results, "global_results-val.csv")) as f:
        return results, next(csv.DictReader(f))


def write_example_overlay(args, eval_root, results):
    sequence = sorted(os.listdir(os.path.join(eval_root, "trainval", "JPEGImages", "480p")))[0]
    frame_paths = sorted(glob.glob(os.path.join(eval_root, "trainval", "JPEGImages", "480p", sequence, "*.jpg")))
    frames = [load_frame(p) for p in frame_paths]
    labels = [load_annotation(os.path.join(results, sequence, os.path.basename(p)[:-4] + ".png"))
              for p in frame_paths]
    path = os.path.join(args.output, f"overlay_{sequence}." + {"gif": "gif", "strip": "png", "mp4": "mp4"}[args.overlay])
    write_overlay(path, args.overlay, frames, labels)
    return path


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    train_root, eval_root = make_data(args)
    print(f"synthetic data: {args.train_videos} training and {args.eval_videos} held-out videos in {args.output}/data")
    train_start = time.time()
    weights = train_network(args, train_root)
    train_time = time.time() - train_start
    results, table = evaluate(args, weights, eval_root)
    overlay = write_example_overlay(args, eval_root, results)
    print(f"\nQuick start done in {(time.time() - start) / 60:.1f} min (training {train_time / 60:.1f} min).")
    print(f"Held-out J&F-Mean {float(table['J&F-Mean']):.3f} (J {float(table['J-Mean']):.3f}, "
          f"F {float(table['F-Mean']):.3f}); weights {weights}; overlay {overlay}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
