"""Segment your own videos: frames plus a palette PNG for each frame where
objects first appear (pixel value = object id). Results: <output>/<video>/<frame>.png
with the palette of the input annotation; optionally an overlay to look at.

    python eval_generic.py --model saves/imsfr.pth --data my_videos --output results/mine --overlay gif
        (my_videos/JPEGImages/<video>/*.jpg, my_videos/Annotations/<video>/<frame>.png)
    python eval_generic.py --model saves/imsfr.pth --frames clip/ --masks clip_masks/ --output results/clip
    python eval_generic.py --model saves/imsfr.pth --video clip.mp4 --masks 00000.png --output results \\
        --overlay mp4
        (a video file, decoded frame by frame; masks named by frame index: 00000.png is the first frame;
         results in results/clip/00000.png, ...; the overlay at the video's frame rate)
    torchrun --nproc_per_node=2 eval_generic.py --model saves/imsfr.pth --data my_videos --output results/mine
        (the videos split over 2 processes/GPUs)
"""
import argparse
import os
import sys

from inference_core.cli import add_inference_arguments, run_evaluation
from inference_core.data.readers import DEFAULT_FPS, FolderSet, SingleVideo, VideoFile
from util.overlay import OVERLAY_KINDS, OverlayWriter
from util.palette import load_annotation, load_palette


def overlay_writer(output, kind, overwrite):
    """after_video hook: <output>/overlays/<video>.<gif|mp4|png> from the frames and the written masks,
    streamed: one frame and one mask in memory at a time; mp4 at the video file's frame rate
    (frame folders: DEFAULT_FPS)."""
    def write(spec, out_dir):
        path = os.path.join(output, "overlays", spec.name + OVERLAY_KINDS[kind])
        if os.path.isfile(path) and not overwrite:
            return
        names = spec.output_names()
        order = sorted(names)
        palette = load_palette(os.path.join(out_dir, names[order[0]]))
        fps = spec.frames.fps or DEFAULT_FPS
        with spec.frames.reader() as frames, OverlayWriter(path, kind, len(order), palette, fps) as writer:
            for t in order:
                writer.add(frames.read(t), load_annotation(os.path.join(out_dir, names[t])))
        print(f"{spec.name}: overlay {path}")
    return write


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="folder with JPEGImages/<video>/ and Annotations/<video>/")
    source.add_argument("--frames", help="frame folder of a single video (with --masks)")
    source.add_argument("--video", help="a video file (mp4, avi, ...; read with OpenCV) of a single video "
                                        "(with --masks)")
    parser.add_argument("--masks", help="annotations of the single video: with --frames a folder of PNGs named "
                                        "like the frames; with --video a folder of PNGs named by frame index "
                                        "(00000.png = first frame) or one PNG (frame 0, or the index it is named by)")
    parser.add_argument("--overlay", choices=sorted(OVERLAY_KINDS), help="also write an overlay per video")
    add_inference_arguments(parser, "generic")
    args = parser.parse_args(argv)
    if bool(args.frames or args.video) != bool(args.masks):
        parser.error("--masks goes with --frames or --video, and they need it")

    def open_dataset():
        if args.data:
            return FolderSet(args.data)
        if args.video:
            return VideoFile(args.video, args.masks)
        return SingleVideo(args.frames, args.masks)

    hook = overlay_writer(args.output, args.overlay, args.overwrite) if args.overlay else None
    return run_evaluation(args, open_dataset, lambda name: os.path.join(args.output, name), after_video=hook)


if __name__ == "__main__":
    sys.exit(main())
