"""Evaluate on DAVIS 2016 val (single object: all annotated objects are merged
into one), write palette PNG results per frame (0 background, 1 object) and
score them with the built-in DAVIS evaluator.

    python eval_davis_2016.py --model saves/imsfr.pth --output results/d16_val
    torchrun --nproc_per_node=2 eval_davis_2016.py --model saves/imsfr.pth --output results/d16_val
"""
import argparse
import sys

from eval_davis import add_evaluation_arguments, run_davis
from inference_core.cli import add_inference_arguments


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis_path", default="../DAVIS/2016",
                        help="DAVIS 2016 root (JPEGImages/480p, Annotations/480p, ImageSets)")
    add_inference_arguments(parser, "davis2016")
    add_evaluation_arguments(parser)
    args = parser.parse_args(argv)
    return run_davis(args, args.davis_path, "2016", "val")


if __name__ == "__main__":
    sys.exit(main())
