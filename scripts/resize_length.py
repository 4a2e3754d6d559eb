"""Copy a video dataset with every frame's shorter side resized to --length pixels.

    python scripts/resize_length.py --input SRC --output DST [--length 480] [--workers N] [--jpeg_quality Q]

SRC holds JPEGImages/<video>/ and Annotations/<video>/. Frames are resized
bicubic, annotations nearest-neighbour with their palette kept (label ids do
not change). Videos run in parallel; a video whose output files all exist is
skipped, so an interrupted run can simply be restarted. Every file is written
atomically. Note: the skip test looks at file names only; use a new --output
when changing --length.
"""
import argparse
import io
import multiprocessing
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import progressbar  # noqa: E402
from PIL import Image  # noqa: E402

from util.fileio import atomic_write_bytes  # noqa: E402
from util.palette import load_annotation, load_palette, save_palette_png  # noqa: E402

FRAME_EXTENSIONS = (".jpg", ".jpeg", ".png")
SUBFOLDERS = ("JPEGImages", "Annotations")


class ResizeError(ValueError):
    """Unusable input folder; the message names it."""


def resized_size(width, height, length):
    """(width, height) with the shorter side exactly ``length`` and the aspect ratio kept."""
    if width <= height:
        return length, max(1, round(height * length / width))
    return max(1, round(width * length / height)), length


def list_videos(source):
    for sub in SUBFOLDERS:
        if not os.path.isdir(os.path.join(source, sub)):
            raise ResizeError(f"{source}: no {sub}/ folder (expected {' and '.join(SUBFOLDERS)})")
    return sorted({name for sub in SUBFOLDERS for name in os.listdir(os.path.join(source, sub))
                   if os.path.isdir(os.path.join(source, sub, name))})


def video_files(source, output, video):
    """(kind, input path, output path) of every frame and annotation of ``video``."""
    files = []
    for sub, extensions in (("JPEGImages", FRAME_EXTENSIONS), ("Annotations", (".png",))):
        folder = os.path.join(source, sub, video)
        if os.path.isdir(folder):
            files += [(sub, os.path.join(folder, name), os.path.join(output, sub, video, name))
                      for name in sorted(os.listdir(folder)) if name.lower().endswith(extensions)]
    return files


def copy_file(source, target):
    """Byte-for-byte copy of ``source``, written atomically."""
    with open(source, "rb") as f:
        atomic_write_bytes(target, f.read())


def resize_frame(source, target, length, quality):
    with Image.open(source) as image:
        image.load()
        size = resized_size(*image.size, length)
        if size == image.size:  # already right: keep the original bytes
            return copy_file(source, target)
        image = image.convert("RGB").resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    if target.lower().endswith(".png"):
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=quality)
    atomic_write_bytes(target, buffer.getvalue())


def resize_annotation(source, target, length):
    labels = load_annotation(source)
    height, width = labels.shape
    size = resized_size(width, height, length)
    if size == (width, height):
        return copy_file(source, target)
    resized = np.asarray(Image.fromarray(labels, mode="L").resize(size, Image.NEAREST))
    save_palette_png(target, resized, load_palette(source))


def resize_video(job):
    """Worker: resize the ``video_files`` of one video; returns (video, error message or None)."""
    video, files, length, quality = job
    current = None
    try:
        for kind, current, target in files:
            if os.path.exists(target):
                continue
            if kind == "JPEGImages":
                resize_frame(current, target, length, quality)
            else:
                resize_annotation(current, target, length)
    except Exception as error:  # reported per video so one bad file does not stop the rest
        return video, f"{current}: {error}"
    return video, None


def copy_top_level_files(source, output):
    """meta.json and similar files beside the image folders."""
    for name in os.listdir(source):
        path = os.path.join(source, name)
        if os.path.isfile(path) and not os.path.exists(os.path.join(output, name)):
            copy_file(path, os.path.join(output, name))


def resize_dataset(source, output, length=480, workers=1, quality=75):
    """Resize every unfinished video; returns {'resized': n, 'skipped': n, 'failed': [messages]}."""
    if length < 1:
        raise ResizeError(f"--length must be positive, got {length}")
    videos = list_videos(source)
    if os.path.realpath(source) == os.path.realpath(output):
        raise ResizeError(f"{output}: output folder must differ from the input folder")
    os.makedirs(output, exist_ok=True)
    copy_top_level_files(source, output)
    files = {video: video_files(source, output, video) for video in videos}
    todo = [video for video in videos if not all(os.path.exists(out) for _, _, out in files[video])]
    print(f"{len(videos)} videos in {source}: {len(videos) - len(todo)} already done, {len(todo)} to resize")
    jobs = [(video, files[video], length, quality) for video in todo]
    bar = progressbar.ProgressBar(max_value=len(jobs))
    if workers > 1 and len(jobs) > 1:
        with multiprocessing.Pool(min(workers, len(jobs))) as pool:
            results = list(bar(pool.imap_unordered(resize_video, jobs)))
    else:
        results = [resize_video(job) for job in bar(jobs)]
    failed = [message for _, message in results if message]
    return {"resized": len(jobs) - len(failed), "skipped": len(videos) - len(todo), "failed": failed}


def build_parser(description, input_default=None, output_default=None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--input", default=input_default, required=input_default is None,
                        help="dataset folder with JPEGImages/ and Annotations/" +
                        (" (default: %(default)s)" if input_default else ""))
    parser.add_argument("--output", default=output_default, required=output_default is None,
                        help="output folder" + (" (default: %(default)s)" if output_default else ""))
    parser.add_argument("--length", type=int, default=480,
                        help="shorter side in pixels (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="parallel processes (default: %(default)s)")
    parser.add_argument("--jpeg_quality", type=int, default=75,
                        help="JPEG quality of resized frames (default: %(default)s, PIL's default)")
    return parser


def run(args):
    """Resize as ``args`` say; prints failures and returns the exit code."""
    try:
        summary = resize_dataset(args.input, args.output, args.length, args.workers, args.jpeg_quality)
    except ResizeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for message in summary["failed"]:
        print(f"error: {message}", file=sys.stderr)
    print(f"resized {summary['resized']} videos, skipped {summary['skipped']}, failed {len(summary['failed'])}")
    return 1 if summary["failed"] else 0


def main(argv=None):
    return run(build_parser(__doc__.split("\n\n")[0]).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
