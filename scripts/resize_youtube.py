"""Make the 480p (shorter side) copy of the YouTube-VOS training set used for training.

    python scripts/resize_youtube.py [--input ../YouTube/train] [--output ../YouTube/train_480p] [--workers N]

A thin wrapper around scripts/resize_length.py with the YouTube defaults;
restartable (finished videos are skipped).
"""
import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from scripts.resize_length import build_parser, run  # noqa: E402

YOUTUBE_ROOT = os.path.join(os.path.dirname(REPO_ROOT), "YouTube")


def main(argv=None):
    parser = build_parser(__doc__.split("\n\n")[0], input_default=os.path.join(YOUTUBE_ROOT, "train"),
                          output_default=os.path.join(YOUTUBE_ROOT, "train_480p"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
