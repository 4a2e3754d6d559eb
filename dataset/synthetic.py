"""Synthetic video object segmentation data in the DAVIS 2017 and YouTube-VOS layouts.

Small deterministic stand-ins for the real benchmarks, so that training,
inference and evaluation can be exercised without any download. Every video is
a slowly panning textured background with 1..K textured shapes (ellipse,
rectangle, polygon) that move at constant velocity, bounce off the borders,
rotate and breathe slightly, and occlude each other in a fixed depth order.
Every object keeps at least ``MIN_VISIBLE_FRACTION`` of the frame visible in
each frame where it is present (scenes that break this are redrawn).

The same seed gives byte-identical files: each video draws from its own
``numpy.random.default_rng([seed, hash(split), index])``.
"""
import colorsys
import io
import json
import math
import os
import zlib

import cv2
import numpy as np
from PIL import Image

from util.fileio import atomic_write_bytes, atomic_write_text
from util.palette import save_palette_png

MIN_VISIBLE_FRACTION = 0.02
JPEG_QUALITY = 95
YOUTUBE_SPLITS = ("train", "valid", "test")
_MAX_ATTEMPTS = 200
_SHAPES = ("ellipse", "rectangle", "polygon")


# ----------------------------------------------------------------------------- scene


def _bounce(start, distance, low, high):
    """Position after travelling ``distance`` from ``start`` between two walls (reflections)."""
    span = high - low
    if span <= 0:
        return low
    u = (start - low + distance) % (2 * span)
    return low + (u if u <= span else 2 * span - u)


class _Mover:
    """One textured shape with a closed-form trajectory (no state, so any frame renders alone)."""

    def __init__(self, rng, size, colour, start, scale=1.0):
        height, width = size
        short = min(height, width)
        self.start = start
        shape = _SHAPES[rng.integers(len(_SHAPES))]
        a, b = rng.uniform(0.14, 0.26, size=2) * short * scale
        if shape == "ellipse":
            phi = np.linspace(0, 2 * np.pi, 48, endpoint=False)
            self.outline = np.stack([a * np.cos(phi), b * np.sin(phi)], 1)
        elif shape == "rectangle":
            self.outline = np.array([[-a, -b], [a, -b], [a, b], [-a, b]], dtype=np.float64)
        else:
            n = int(rng.integers(5, 9))
            phi = np.sort((np.arange(n) + rng.uniform(-0.3, 0.3, n)) * 2 * np.pi / n)
            rho = rng.uniform(0.65, 1.0, n)
            self.outline = np.stack([a * rho * np.cos(phi), b * rho * np.sin(phi)], 1)
        self.scale_amp = rng.uniform(0.04, 0.12)
        self.scale_period = rng.uniform(12, 30)
        self.scale_phase = rng.uniform(0, 2 * np.pi)
        self.angle = rng.uniform(0, 2 * np.pi)
        self.spin = rng.uniform(-0.05, 0.05)
        # Keep the centre far enough inside that at least about half the shape shows.
        reach = 0.5 * max(a, b) * (1 + self.scale_amp)
        self.bounds = [(min(reach, 0.45 * extent), max(extent - reach, 0.55 * extent)) for extent in (width, height)]
        self.centre = [rng.uniform(lo, hi) for lo, hi in self.bounds]
        speed = rng.uniform(0.015, 0.04) * short
        heading = rng.uniform(0, 2 * np.pi)
        self.velocity = (speed * np.cos(heading), speed * np.sin(heading))
        self.colours = np.array([colour, [c * 0.55 for c in colour]], dtype=np.float64)
        self.pattern = "stripes" if rng.random() < 0.5 else "checks"
        self.period = rng.uniform(0.08, 0.16) * short
        self.pattern_angle = rng.uniform(0, np.pi)

    def pose(self, t):
        x = _bounce(self.centre[0], self.velocity[0] * t, *self.bounds[0])
        y = _bounce(self.centre[1], self.velocity[1] * t, *self.bounds[1])
        scale = 1 + self.scale_amp * math.sin(2 * math.pi * t / self.scale_period + self.scale_phase)
        return x, y, scale, self.angle + self.spin * t

    def draw(self, t, grid):
        """(mask, RGB texture in 0..1) at frame ``t``; ``grid`` is the (x, y) pixel-centre grid."""
        x, y, scale, angle = self.pose(t)
        cos, sin = math.cos(angle), math.sin(angle)
        u, v = self.outline[:, 0] * scale, self.outline[:, 1] * scale
        points = np.stack([x + cos * u - sin * v, y + sin * u + cos * v], 1)
        mask = np.zeros(grid[0].shape, dtype=np.uint8)
        # 4 fractional bits: sub-pixel vertices so slow motion still moves the outline.
        cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
        # Texture in object coordinates, so it travels and turns with the shape.
        dx, dy = grid[0] - x, grid[1] - y
        ou, ov = (cos * dx + sin * dy) / scale, (-sin * dx + cos * dy) / scale
        if self.pattern == "stripes":
            along = ou * math.cos(self.pattern_angle) + ov * math.sin(self.pattern_angle)
            wave = np.sin(2 * np.pi * along / self.period)
        else:
            wave = np.sin(2 * np.pi * ou / self.period) * np.sin(2 * np.pi * ov / self.period)
        weight = (0.5 + 0.5 * wave)[..., None]
        texture = weight * self.colours[0] + (1 - weight) * self.colours[1]
        return mask.astype(bool), texture


class _Background:
    """Smooth coloured noise, a gradient and a low-frequency wave on a canvas that pans slowly."""

    def __init__(self, rng, size, num_frames):
        height, width = size
        self.size = size
        self.velocity = rng.uniform(-0.6, 0.6, size=2)  # (x, y) px / frame
        self.pad = int(math.ceil(0.6 * max(num_frames - 1, 0))) + 1
        ch, cw = height + 2 * self.pad, width + 2 * self.pad
        coarse = cv2.resize(rng.random((4, 6, 3)), (cw, ch), interpolation=cv2.INTER_CUBIC)
        fine = cv2.resize(rng.random((max(ch // 8, 2), max(cw // 8, 2), 3)), (cw, ch), interpolation=cv2.INTER_LINEAR)
        ys, xs = np.mgrid[0:ch, 0:cw].astype(np.float64)
        direction = rng.uniform(0, 2 * np.pi)
        ramp = (xs * math.cos(direction) + ys * math.sin(direction)) / max(ch, cw)
        wave_dir = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (xs * math.cos(wave_dir) + ys * math.sin(wave_dir)) / (rng.uniform(0.3, 0.6) * cw))
        canvas = 0.55 * coarse + 0.2 * fine + (0.15 * ramp + 0.1 * wave)[..., None] * rng.uniform(-1, 1, 3)
        grey = canvas.mean(axis=2, keepdims=True)
        canvas = 0.5 * grey + 0.5 * canvas  # muted colours, so objects stand out
        low, high = canvas.min(), canvas.max()
        self.canvas = 0.15 + 0.7 * (canvas - low) / max(high - low, 1e-6)

    def crop(self, t):
        height, width = self.size
        x0 = self.pad + int(round(self.velocity[0] * t))
        y0 = self.pad + int(round(self.velocity[1] * t))
        return self.canvas[y0:y0 + height, x0:x0 + width].copy()


def _distinct_colours(rng, count):
    """Saturated colours with evenly spread hues (random rotation), one per object."""
    offset = rng.random()
    colours = []
    for k in range(count):
        hue = (offset + k / count + rng.uniform(-0.05, 0.05)) % 1.0
        colours.append(colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 0.95), rng.uniform(0.7, 0.95)))
    return colours


def _render_video(rng, size, num_frames, starts, object_scale=1.0):
    """Frames (T x H x W x 3 uint8) and label maps (T x H x W uint8, object k -> k + 1).

    Object k is present from frame ``starts[k]`` on; ``object_scale`` scales the shapes' sizes.
    Scenes where a present object is hidden below the minimum visible area are redrawn.
    """
    height, width = size
    min_area = MIN_VISIBLE_FRACTION * height * width
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    for _ in range(_MAX_ATTEMPTS):
        background = _Background(rng, size, num_frames)
        colours = _distinct_colours(rng, len(starts))
        movers = [_Mover(rng, size, colour, start, object_scale) for colour, start in zip(colours, starts)]
        depth_order = rng.permutation(len(movers))  # drawn back to front
        images = np.empty((num_frames, height, width, 3), dtype=np.uint8)
        labels = np.zeros((num_frames, height, width), dtype=np.uint8)
        visible = True
        for t in range(num_frames):
            image = background.crop(t)
            for k in depth_order:
                if t < movers[k].start:
                    continue
                mask, texture = movers[k].draw(t, (xs, ys))
                image[mask] = texture[mask]
                labels[t][mask] = k + 1
            images[t] = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
            areas = np.bincount(labels[t].ravel(), minlength=len(movers) + 1)
            if any(t >= m.start and areas[k + 1] < min_area for k, m in enumerate(movers)):
                visible = False
                break
        if visible:
            return images, labels
    raise ValueError(f"could not place {len(starts)} objects in a {height}x{width} frame with each keeping "
                     f"{MIN_VISIBLE_FRACTION:.0%} of the frame visible; use fewer objects or a larger size")


# ----------------------------------------------------------------------------- writers


def _video_rng(seed, kind, index):
    return np.random.default_rng([seed, zlib.crc32(kind.encode("utf-8")), index])


def _write_jpeg(path, image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    atomic_write_bytes(path, buffer.getvalue())


def _check_common(num_videos, num_frames, size, max_objects, seed):
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if num_videos < 1 or num_frames < 1:
        raise ValueError(f"need at least one video and one frame, got {num_videos} videos of {num_frames} frames")
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"size must be (H, W) with both at least 16 pixels, got {tuple(size)}")
    if not 1 <= max_objects <= 254:
        raise ValueError(f"max_objects must lie in 1..254, got {max_objects}")
    return int(size[0]), int(size[1])


def make_davis_dataset(root, num_sequences=4, num_frames=12, size=(96, 160), max_objects=2, seed=0,
                       splits=("train", "val"), prefix="seq", object_scale=1.0) -> dict[str, list[str]]:
    """Write a DAVIS 2017 style dataset under ``root``; returns {split: [sequence names]}.

    Layout: JPEGImages/480p/<seq>/00000.jpg, Annotations/480p/<seq>/00000.png
    (DAVIS palette, ids 1..K in every frame, all objects present from frame 0),
    ImageSets/2017/<split>.txt and ImageSets/2016/<split>.txt (same lists: the
    2016 evaluation merges all objects into one). ``size`` is (H, W); ``object_scale`` scales
    the objects (smaller: below 1).
    """
    size = _check_common(num_sequences, num_frames, size, max_objects, seed)
    names = {}
    for split in splits:
        names[split] = []
        for index in range(num_sequences):
            name = f"{prefix}_{split}_{index:03d}"
            rng = _video_rng(seed, "davis:" + split, index)
            num_objects = int(rng.integers(1, max_objects + 1))
            images, labels = _render_video(rng, size, num_frames, [0] * num_objects, object_scale)
            for t in range(num_frames):
                _write_jpeg(os.path.join(root, "JPEGImages", "480p", name, f"{t:05d}.jpg"), images[t])
                save_palette_png(os.path.join(root, "Annotations", "480p", name, f"{t:05d}.png"), labels[t])
            names[split].append(name)
        listing = "".join(name + "\n" for name in names[split])
        for year in ("2017", "2016"):
            atomic_write_text(os.path.join(root, "ImageSets", year, f"{split}.txt"), listing)
    return names


def _youtube_ids(rng, count):
    """Sorted distinct ids in 1..2K+1 that are never exactly 1..K (as in YouTube-VOS)."""
    while True:
        ids = sorted(int(i) for i in rng.choice(np.arange(1, 2 * count + 2), size=count, replace=False))
        if ids != list(range(1, count + 1)):
            return ids


def make_youtube_dataset(root, num_videos=3, num_frames=15, size=(96, 160), max_objects=3, seed=0,
                         split="valid", frame_step=5, annotate_every=None) -> list[str]:
    """Write a YouTube-VOS style split under ``root/<split>``; returns the video names.

    Frames are named ``i * frame_step`` (00000, 00005, ...). Object ids are not
    contiguous and objects after the first may appear mid-video (the last one
    always does when there are at least two). ``valid``/``test``: an annotation
    exists only for frames where some object first appears and holds only those
    objects; the full ground truth goes to ``root/<split>_gt/Annotations``.
    ``train``: every frame is annotated, or every ``annotate_every``-th frame.
    """
    size = _check_common(num_videos, num_frames, size, max_objects, seed)
    if split not in YOUTUBE_SPLITS:
        raise ValueError(f"split must be one of {YOUTUBE_SPLITS}, got {split!r}")
    if frame_step < 1 or (annotate_every is not None and annotate_every < 1):
        raise ValueError(f"frame_step and annotate_every must be at least 1, got {frame_step}, {annotate_every}")
    training = split == "train"
    step = annotate_every if (training and annotate_every) else 1
    annotated = list(range(0, num_frames, step))
    frame_names = [f"{i * frame_step:05d}" for i in range(num_frames)]
    split_dir = os.path.join(root, split)
    meta = {"videos": {}}
    videos = []
    for index in range(num_videos):
        video = f"yt_{split}_{index:03d}"
        rng = _video_rng(seed, "youtube:" + split, index)
        num_objects = int(rng.integers(min(2, max_objects), max_objects + 1))
        late = [t for t in annotated if 1 <= t <= max(1, num_frames // 2)]
        starts = [0]
        for k in range(1, num_objects):
            mid_video = bool(late) and (k == num_objects - 1 or rng.random() < 0.6)
            starts.append(int(rng.choice(late)) if mid_video else 0)
        ids = _youtube_ids(rng, num_objects)
        images, labels = _render_video(rng, size, num_frames, starts)
        id_map = np.array([0] + ids + [0] * (255 - num_objects), dtype=np.uint8)  # index k+1 -> id
        for t in range(num_frames):
            _write_jpeg(os.path.join(split_dir, "JPEGImages", video, frame_names[t] + ".jpg"), images[t])
        if training:
            for t in annotated:
                save_palette_png(os.path.join(split_dir, "Annotations", video, frame_names[t] + ".png"),
                                 id_map[labels[t]])
        else:
            for t in sorted(set(starts)):
                new = [k + 1 for k, s in enumerate(starts) if s == t]
                first = np.where(np.isin(labels[t], new), id_map[labels[t]], 0).astype(np.uint8)
                save_palette_png(os.path.join(split_dir, "Annotations", video, frame_names[t] + ".png"), first)
            for t in range(num_frames):
                save_palette_png(os.path.join(root, f"{split}_gt", "Annotations", video, frame_names[t] + ".png"),
                                 id_map[labels[t]])
        listed = annotated if training else range(num_frames)
        meta["videos"][video] = {"objects": {
            str(obj_id): {"category": "synthetic", "frames": [frame_names[t] for t in listed if t >= start]}
            for obj_id, start in zip(ids, starts)}}
        videos.append(video)
    atomic_write_text(os.path.join(split_dir, "meta.json"), json.dumps(meta, indent=1) + "\n")
    return videos
