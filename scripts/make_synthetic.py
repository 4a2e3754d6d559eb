"""Write a small synthetic dataset in the DAVIS 2017 or YouTube-VOS layout.

    python scripts/make_synthetic.py --format davis --out DIR [--num N --frames T --size H W --objects K --seed S]
        [--object_scale F]
    python scripts/make_synthetic.py --format youtube --out DIR [--split valid|test|train ...]

The same seed always gives the same files.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dataset.synthetic import make_davis_dataset, make_youtube_dataset  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=("davis", "youtube"), required=True)
    parser.add_argument("--out", required=True, help="dataset root to write")
    parser.add_argument("--num", type=int, help="sequences per split (davis, default 4) or videos (youtube, 3)")
    parser.add_argument("--frames", type=int, help="frames per video (davis 12, youtube 15)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), default=(96, 160))
    parser.add_argument("--objects", type=int, help="maximum objects per video (davis 2, youtube 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--object_scale", type=float, default=1.0,
                        help="davis: scale of the objects' sizes (below 1: smaller; default: %(default)s)")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], help="davis: ImageSets splits")
    parser.add_argument("--split", default="valid", choices=("train", "valid", "test"), help="youtube split")
    parser.add_argument("--frame_step", type=int, default=5, help="youtube: frame i is named i * step")
    parser.add_argument("--annotate_every", type=int, default=None,
                        help="youtube train: annotate only every N-th frame (default: every frame)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    options = {key: value for key, value in (("num_frames", args.frames), ("max_objects", args.objects))
               if value is not None}
    try:
        if args.format == "davis":
            if args.num is not None:
                options["num_sequences"] = args.num
            names = make_davis_dataset(args.out, size=tuple(args.size), seed=args.seed, splits=tuple(args.splits),
                                       object_scale=args.object_scale, **options)
            for split, sequences in names.items():
                print(f"{split}: {len(sequences)} sequences")
        else:
            if args.num is not None:
                options["num_videos"] = args.num
            videos = make_youtube_dataset(args.out, size=tuple(args.size), seed=args.seed, split=args.split,
                                          frame_step=args.frame_step, annotate_every=args.annotate_every, **options)
            print(f"{args.split}: {len(videos)} videos")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.format} dataset to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
