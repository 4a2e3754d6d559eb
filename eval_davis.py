"""Evaluate on DAVIS 2017 val or test-dev: write palette PNG results per frame
and, for val, score them with the built-in DAVIS evaluator.

    python eval_davis.py --model saves/imsfr.pth --output results/d17_val
    python eval_davis.py --model saves/imsfr.pth --output results/d17_testdev --split testdev
    torchrun --nproc_per_node=4 eval_davis.py --model saves/imsfr.pth --output results/d17_val
        (the sequences split over 4 processes/GPUs; scored once, by rank 0)
"""
import argparse
import os
import sys

from inference_core.cli import add_inference_arguments, run_evaluation
from inference_core.data.readers import DavisSet
from inference_core.video_runner import EXIT_FAILED, EXIT_OK
from util.davis_metrics import evaluate_davis, format_tables, write_tables

SPLIT_FOLDERS = {"val": ("trainval", "val"), "testdev": ("test-dev", "test-dev")}


def evaluate(davis_root, output, year, split, workers):
    """Score the results and write the toolkit's CSV tables; returns the exit code."""
    try:
        result = evaluate_davis(davis_root, output, year=year, split=split, workers=workers)
    except (OSError, ValueError) as error:
        print(f"evaluation failed: {error}", file=sys.stderr)
        return EXIT_FAILED
    paths = write_tables(result, output, split)
    print(format_tables(result, split))
    print("Tables written to " + ", ".join(paths))
    for sequence, message in result.failures:
        print(f"not scored: {message}")
    return EXIT_FAILED if result.failures else EXIT_OK


def run_davis(args, davis_root, year, split):
    """Run a DAVIS split into ``args.output``/<sequence>/ and evaluate it when ground truth exists.
    Under torchrun the sequences are split over the processes and rank 0 reports and evaluates."""
    def finish(summary, dataset):
        if dataset.has_ground_truth and not args.no_eval:
            return evaluate(davis_root, args.output, year, split, args.eval_workers)
        return EXIT_OK

    return run_evaluation(args, lambda: DavisSet(davis_root, year, split),
                          lambda name: os.path.join(args.output, name), finish=finish)


def add_evaluation_arguments(parser):
    parser.add_argument("--no_eval", action="store_true", help="do not score the results against the ground truth")
    parser.add_argument("--eval_workers", type=int, default=None, help="processes for scoring (default: up to 4)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis_path", default="../DAVIS/2017", help="DAVIS 2017 root (holds trainval/, test-dev/)")
    parser.add_argument("--split", choices=sorted(SPLIT_FOLDERS), default="val")
    add_inference_arguments(parser, "davis2017")
    add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    folder, split = SPLIT_FOLDERS[args.split]
    return run_davis(args, os.path.join(args.davis_path, folder), "2017", split)


if __name__ == "__main__":
    sys.exit(main())
