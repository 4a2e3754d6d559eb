"""Segment your own videos: frames plus a palette PNG for each frame where
objects first appear (pixel value = object id). Results: <output>/<video>/<frame>.png
with the palette of the input annotation; optionally an overlay to look at.

    python eval_generic.py --model saves/imsfr.pth --data my_videos --output results/mine --overlay gif
        (my_videos/JPEGImages/<video>/*.jpg, my_videos/Annotations/<video>/<frame>.png)
    python eval_generic.py --model saves/imsfr.pth --frames clip/ --masks clip_masks/ --output results/clip
"""
import argparse
import os
import sys

from dataset.eval_datasets import FolderSet, SingleVideo
from inference_core.output_guard import refuse_overlap
from inference_core.video_runner import EXIT_SETUP, SETUP_ERRORS, add_inference_arguments, build_core, run_videos
from util.overlay import OVERLAY_KINDS, write_overlay
from util.palette import load_annotation, load_frame, load_palette


def overlay_writer(output, kind, overwrite):
    """after_video hook: <output>/overlays/<video>.<gif|mp4|png> from the frames and the written masks."""
    def write(spec, out_dir):
        path = os.path.join(output, "overlays", spec.name + OVERLAY_KINDS[kind])
        if os.path.isfile(path) and not overwrite:
            return
        names = spec.output_names()
        frames = [load_frame(spec.frame_paths[t]) for t in names]
        masks = [load_annotation(os.path.join(out_dir, names[t])) for t in names]
        write_overlay(path, kind, frames, masks, load_palette(os.path.join(out_dir, names[min(names)])))
        print(f"{spec.name}: overlay {path}")
    return write


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="folder with JPEGImages/<video>/ and Annotations/<video>/")
    source.add_argument("--frames", help="frame folder of a single video (with --masks)")
    parser.add_argument("--masks", help="annotation folder of the single video given by --frames")
    parser.add_argument("--overlay", choices=sorted(OVERLAY_KINDS), help="also write an overlay per video")
    add_inference_arguments(parser, "generic", size=480)
    args = parser.parse_args(argv)
    if bool(args.frames) != bool(args.masks):
        parser.error("--frames and --masks go together")
    try:
        dataset = FolderSet(args.data) if args.data else SingleVideo(args.frames, args.masks)
        refuse_overlap(args.output, dataset.input_folders())
        core = build_core(args)
    except SETUP_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    hook = overlay_writer(args.output, args.overlay, args.overwrite) if args.overlay else None
    summary = run_videos(dataset, core, lambda name: os.path.join(args.output, name), args.size,
                         args.overwrite, after_video=hook)
    return summary.report(core.device)


if __name__ == "__main__":
    sys.exit(main())
