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

from dataset.eval_datasets import YouTubeSet
from inference_core import sharding
from inference_core.output_guard import refuse_overlap
from inference_core.video_runner import EXIT_FAILED, EXIT_SETUP, SETUP_ERRORS, add_inference_arguments, \
    build_core, run_videos
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--yv_path", default="../YouTube", help="YouTube-VOS 2018 or 2019 root")
    parser.add_argument("--split", choices=["valid", "test"], default="valid")
    parser.add_argument("--save_all", "--output_all", dest="save_all", action="store_true",
                        help="write every frame, not only those listed in meta.json (the scored ones)")
    add_inference_arguments(parser, "youtube", size=480)
    args = parser.parse_args(argv)
    try:
        shard = sharding.join(args)
        dataset = YouTubeSet(args.yv_path, args.split, args.save_all)
        refuse_overlap(args.output, dataset.input_folders())
        core = build_core(args)
    except SETUP_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    annotations = os.path.join(args.output, "Annotations")
    try:
        summary = run_videos(dataset, core, lambda name: os.path.join(annotations, name), args.size,
                             args.overwrite, shard=shard)
    finally:
        sharding.leave(shard)
    if not shard.is_main:
        return summary.exit_code()
    code = summary.report(core.device)
    if summary.complete:
        done = set(summary.complete)
        complete = [name for name in dataset.names if name in done]
        try:
            print(f"Archive for the server: {write_zip(dataset, complete, args.output)}")
        except (OSError, *SETUP_ERRORS) as error:
            # The PNGs stay where they are; only the archive is missing.
            print(f"error: could not write the archive {os.path.normpath(args.output)}.zip ({error}); "
                  f"the results are in {annotations}", file=sys.stderr)
            return max(code, EXIT_FAILED)
        if summary.failures:
            print(f"WARNING: the archive lacks the {len(summary.failures)} failed videos")
    return code


if __name__ == "__main__":
    sys.exit(main())
