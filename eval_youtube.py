"""Run YouTube-VOS 2018/2019 valid or test and pack the results for the
evaluation server: <output>/Annotations/<video>/<frame>.png, zipped into
<output>.zip. Objects start at the frame where they are first annotated.

    python eval_youtube.py --model saves/imsfr.pth --yv_path ../YouTube --output results/yv19_valid
    torchrun --nproc_per_node=4 eval_youtube.py --model saves/imsfr.pth --yv_path ../YouTube --output results/yv19_valid
        (the videos split over 4 processes/GPUs; the zip written once, by rank 0)
"""
import argparse
import os
import sys
import zipfile

from inference_core.cli import SETUP_ERRORS, add_inference_arguments, run_evaluation
from inference_core.data.readers import YouTubeSet
from inference_core.video_runner import EXIT_FAILED, EXIT_OK
from util.fileio import atomic_open


def write_zip(dataset, names, output):
    """<output>.zip with Annotations/<video>/<frame>.png of the given videos, written atomically."""
    path = os.path.normpath(output) + ".zip"
    with atomic_open(path, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            for filename in dataset.video(name).output_names().values():
                member = f"Annotations/{name}/{filename}"
                archive.write(os.path.join(output, "Annotations", name, filename), member)
    return path


def pack_results(summary, dataset, output):
    """The server's zip of the complete videos; the PNGs stay if it cannot be written. Returns an exit code."""
    if not summary.complete:
        return EXIT_OK
    done = set(summary.complete)
    try:
        print(f"Archive for the server: {write_zip(dataset, [n for n in dataset.names if n in done], output)}")
    except (OSError, *SETUP_ERRORS) as error:
        print(f"error: could not write the archive {os.path.normpath(output)}.zip ({error}); "
              f"the results are in {os.path.join(output, 'Annotations')}", file=sys.stderr)
        return EXIT_FAILED
    if summary.failures:
        print(f"WARNING: the archive lacks the {len(summary.failures)} failed videos")
    return EXIT_OK


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--yv_path", default="../YouTube", help="YouTube-VOS 2018 or 2019 root")
    parser.add_argument("--split", choices=["valid", "test"], default="valid")
    parser.add_argument("--save_all", "--output_all", dest="save_all", action="store_true",
                        help="write every frame, not only those listed in meta.json (the scored ones)")
    add_inference_arguments(parser, "youtube")
    args = parser.parse_args(argv)
    return run_evaluation(args, lambda: YouTubeSet(args.yv_path, args.split, args.save_all),
                          lambda name: os.path.join(args.output, "Annotations", name),
                          finish=lambda summary, dataset: pack_results(summary, dataset, args.output))


if __name__ == "__main__":
    sys.exit(main())
