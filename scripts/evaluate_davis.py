"""Score a DAVIS results folder with J and F as the official DAVIS 2017 toolkit does.

    python scripts/evaluate_davis.py --davis_path ROOT --results FOLDER [--year 2017|2016] [--set val]

Prints the global and per-sequence tables, writes global_results-<set>.csv and
per-sequence_results-<set>.csv into FOLDER, lists sequences that could not be
scored and exits with status 1 if there were any.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from util.davis_metrics import evaluate_davis, format_tables, write_tables  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--davis_path", required=True, help="DAVIS root with Annotations/480p and ImageSets")
    parser.add_argument("--results", required=True, help="folder with <sequence>/<frame>.png predictions")
    parser.add_argument("--year", choices=("2017", "2016"), default="2017",
                        help="2016 merges all objects into one (ImageSets/2016/<set>.txt)")
    parser.add_argument("--set", dest="split", default="val", help="sequence list ImageSets/<year>/<set>.txt")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: min(4, CPU count))")
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = evaluate_davis(args.davis_path, args.results, args.year, args.split, args.workers,
                                progress=sys.stderr.isatty())
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.objects:
        print(format_tables(result, args.split))
        for path in write_tables(result, args.results, args.split):
            print(f"wrote {path}")
    else:
        print("no sequence could be scored; no tables written", file=sys.stderr)
    if result.failures:
        print(f"\n{len(result.failures)} sequence(s) failed:", file=sys.stderr)
        for _, message in result.failures:
            print(f"  {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
