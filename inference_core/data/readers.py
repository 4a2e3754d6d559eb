"""Readers of the evaluation sets: DAVIS 2016/2017, YouTube-VOS and plain folders.

A reader lists its videos (``names``) and describes one on request
(``video(name)`` -> :class:`VideoSpec`), so a broken video raises its error
when it is processed and the other videos still run. ``load_objects``
(inference_core/data/objects.py) reads and checks a video's annotations
before any frame is segmented. Every error is a ``SequenceError``
(inference_core/data/__init__.py) or a util.palette.AnnotationError whose
message names the file and what is wrong with it.

A video's frames come from a frame source (``VideoSpec.frames``,
inference_core/data/frame_sources.py): a folder of image files or a video file.
"""
import dataclasses
import json
import os

from inference_core.data import SequenceError
from inference_core.data.frame_sources import FrameFiles, VideoFileFrames, list_frames, stem
from util.davis_metrics import EvaluationError, frame_list_sequences
from util.output_guard import plain_name
# The frame rate of overlays of frame folders (which have none).
DEFAULT_FPS = 10


@dataclasses.dataclass
class VideoSpec:
    name: str
    frame_paths: list            # every frame file of the video, in temporal order ([] for a video file)
    annotation_paths: dict       # frame index -> annotation PNG where objects are given
    saved_frames: list = None    # frame indices whose result is written (None: all)
    merge_objects: bool = False  # DAVIS 2016: every labelled pixel belongs to one object
    listed_objects: dict = dataclasses.field(default_factory=dict)  # id -> frame index it must be given at
    frames: object = None        # the frame source; default FrameFiles(frame_paths)
    inputs: list = None          # files/folders its results must stay apart from (None: those of the files)

    def __post_init__(self):
        if self.frames is None:
            self.frames = FrameFiles(self.frame_paths)

    def output_names(self):
        """{frame index: output file name} of the frames to write."""
        indices = range(len(self.frames)) if self.saved_frames is None else self.saved_frames
        return {t: self.frames.name(t) + ".png" for t in indices}


def read_numbered_list(path, what):
    """[(line number, stripped line)] of the non-blank lines of a text file."""
    if not os.path.isfile(path):
        raise SequenceError(f"{path}: {what} not found")
    try:
        with open(path, encoding="utf-8") as f:
            return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
    except (OSError, UnicodeDecodeError) as error:
        raise SequenceError(f"{path}: cannot read the {what} ({error})") from None


def check_name(name, where):
    """A video name that builds an output path must be one plain path component."""
    if not plain_name(name):
        raise SequenceError(f"{where}: {name!r} is not a video name (it is empty, absolute, '.' or '..', or "
                            "contains a path separator); refusing to build a path from it")
    return name


def check_davis_numbering(frames):
    """DAVIS frames are numbered 00000, 00001, ... without gaps, so that frame t is the t-th file
    and the first-frame annotation is 00000.png: report the first frame that breaks this."""
    for t, path in enumerate(frames):
        name = stem(path)
        if not (name.isdigit() and int(name) == t):
            expected = os.path.join(os.path.dirname(path), f"{t:0{max(5, len(name))}d}{os.path.splitext(path)[1]}")
            raise SequenceError(f"{expected}: frame not found (DAVIS frames are numbered from 00000 without gaps; "
                                f"the next frame file is {os.path.basename(path)})")


# ----------------------------------------------------------------------------- DAVIS


class DavisSet:
    """DAVIS 2017 (trainval / test-dev) or 2016: ``root``/JPEGImages/480p/<seq>/ and
    ``root``/Annotations/480p/<seq>/; only the first frame's annotation is used."""

    def __init__(self, root, year="2017", split="val"):
        self.root, self.year, self.split = root, year, split
        self.merge_objects = year == "2016"
        self.names = self._sequence_names()

    def _sequence_names(self):
        """The names of the split's list; each must be a plain folder name (it builds the output path)."""
        own = os.path.join(self.root, "ImageSets", self.year, f"{self.split}.txt")
        if self.year == "2017" or os.path.isfile(own):
            return [check_name(line, f"{own}: line {n}") for n, line in read_numbered_list(own, "sequence list")]
        # Original DAVIS 2016 list: "/JPEGImages/480p/<seq>/00000.jpg /Annotations/480p/<seq>/00000.png"
        listing = os.path.join(self.root, "ImageSets", "480p", f"{self.split}.txt")
        names = {}
        for n, line in read_numbered_list(listing, f"sequence list (looked for {own} too)"):
            try:
                sequences = frame_list_sequences([line], listing)
            except EvaluationError as error:
                raise SequenceError(str(error)) from None
            for name in sequences:
                names[check_name(name, f"{listing}: line {n}")] = None
        return list(names)

    @property
    def has_ground_truth(self):
        return os.path.isdir(os.path.join(self.root, "Annotations", "480p")) and self.split == "val"

    def input_folders(self):
        return [os.path.join(self.root, "JPEGImages", "480p"), os.path.join(self.root, "Annotations", "480p")]

    def video(self, name):
        frames = list_frames(os.path.join(self.root, "JPEGImages", "480p", check_name(name, "sequence name")))
        check_davis_numbering(frames)
        first = os.path.join(self.root, "Annotations", "480p", name, stem(frames[0]) + ".png")
        if not os.path.isfile(first):
            raise SequenceError(f"{first}: first-frame annotation not found")
        return VideoSpec(name, frames, {0: first}, merge_objects=self.merge_objects)


# ----------------------------------------------------------------------------- YouTube-VOS


class YouTubeSet:
    """YouTube-VOS valid/test: frames from all_frames/<split>_all_frames/JPEGImages
    when present (else <split>/JPEGImages), annotations and meta.json from <split>/.
    Only the frames listed in meta.json are written unless ``save_all``."""

    def __init__(self, root, split="valid", save_all=False):
        self.split_dir = os.path.join(root, split)
        image_dir = os.path.join(self.split_dir, "JPEGImages")
        all_frames = os.path.join(root, "all_frames", f"{split}_all_frames", "JPEGImages")
        self.frame_dir = all_frames if os.path.isdir(all_frames) else image_dir
        self.save_all = save_all
        self.meta_path = os.path.join(self.split_dir, "meta.json")
        try:
            with open(self.meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise SequenceError(f"{self.meta_path}: meta.json not found") from None
        except OSError as error:
            raise SequenceError(f"{self.meta_path}: cannot read meta.json ({error.strerror or error})") from None
        except ValueError as error:
            raise SequenceError(f"{self.meta_path}: not a YouTube-VOS meta.json ({error})") from None
        self.meta = check_meta(meta, self.meta_path)
        if not os.path.isdir(image_dir):
            raise SequenceError(f"{image_dir}: video folder not found")
        self.names = sorted(check_name(d, image_dir) for d in os.listdir(image_dir)
                            if os.path.isdir(os.path.join(image_dir, d)))
        self.input_dirs = sorted({self.frame_dir, image_dir, os.path.join(self.split_dir, "Annotations")})

    def input_folders(self):
        return self.input_dirs

    def video(self, name):
        frames = list_frames(os.path.join(self.frame_dir, check_name(name, "video name")))
        index = {stem(p): t for t, p in enumerate(frames)}
        objects = self.meta.get(name, {}).get("objects")
        if not objects:
            raise SequenceError(f"{self.meta_path}: no objects listed for video {name}")
        annotation_dir = os.path.join(self.split_dir, "Annotations", name)
        annotations = annotation_paths(annotation_dir, index)
        listed, scored = {}, set()
        for obj_id, entry in objects.items():
            listed_frames = entry.get("frames") or []
            missing = [f for f in listed_frames if f not in index]
            if missing or not listed_frames:
                raise SequenceError(f"{self.meta_path}: object {obj_id} of {name} lists no frames or frames missing "
                                    f"from {os.path.join(self.frame_dir, name)} ({missing[:5]})")
            first = index[min(listed_frames)]
            if first not in annotations:
                raise SequenceError(f"{os.path.join(annotation_dir, stem(frames[first]) + '.png')}: "
                                    f"annotation of object {obj_id} (its first listed frame) not found")
            listed[int(obj_id)] = first
            scored.update(index[f] for f in listed_frames)
        saved = None if self.save_all else sorted(scored)
        return VideoSpec(name, frames, annotations, saved_frames=saved, listed_objects=listed)


JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "a boolean", type(None): "null"}


def check_meta(meta, path):
    """The ``videos`` mapping of a parsed YouTube-VOS meta.json, after checking every field it is read by:
    {video: {"objects": {"<id 1..255>": {"frames": ["<frame>", ...]}}}}; errors name the file and the field."""
    def expect(value, kind, field, what):
        if not isinstance(value, kind):
            raise SequenceError(f"{path}: field {field} must be {what}, got {JSON_TYPES.get(type(value), 'a value')}")
        return value

    videos = expect(meta, dict, "(top level)", 'an object with the field "videos"').get("videos")
    if videos is None and "videos" not in meta:
        raise SequenceError(f'{path}: field "videos" is missing')
    for name, entry in expect(videos, dict, '"videos"', "an object (video name -> entry)").items():
        check_name(name, f'{path}: field "videos"')
        objects = expect(entry, dict, f'"videos.{name}"', 'an object with the field "objects"').get("objects", {})
        for obj_id, obj in expect(objects, dict, f'"videos.{name}.objects"', "an object (object id -> entry)").items():
            field = f'"videos.{name}.objects.{obj_id}"'
            if not (obj_id.isdigit() and 1 <= int(obj_id) <= 255):
                raise SequenceError(f"{path}: field {field}: object id must be a number in 1..255")
            frames = expect(obj, dict, field, 'an object with the field "frames"').get("frames", [])
            field = f'{field[:-1]}.frames"'
            for frame in expect(frames, list, field, "an array of frame names"):
                expect(frame, str, field, "an array of frame names (strings)")
    return videos


def annotation_paths(folder, frame_index):
    """{frame index: path} of the PNGs in ``folder``; each must name an existing frame."""
    if not os.path.isdir(folder):
        raise SequenceError(f"{folder}: annotation folder not found")
    paths = {}
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith(".png") or name.startswith("."):
            continue
        if stem(name) not in frame_index:
            raise SequenceError(f"{os.path.join(folder, name)}: annotation has no frame of the same name")
        paths[frame_index[stem(name)]] = os.path.join(folder, name)
    return paths


# ----------------------------------------------------------------------------- own videos


def folder_video(name, frame_dir, mask_dir):
    """A video from a folder of frames and a folder of palette PNGs named like the
    frames, given where objects first appear."""
    frames = list_frames(frame_dir)
    annotations = annotation_paths(mask_dir, {stem(p): t for t, p in enumerate(frames)})
    if not annotations:
        raise SequenceError(f"{mask_dir}: no annotation PNG; give one for the frame where the objects first appear")
    return VideoSpec(name, frames, annotations)


class FolderSet:
    """``root``/JPEGImages/<video>/ frames and ``root``/Annotations/<video>/ masks."""

    def __init__(self, root):
        self.root = root
        image_dir = os.path.join(root, "JPEGImages")
        if not os.path.isdir(image_dir):
            raise SequenceError(f"{image_dir}: folder of videos not found")
        self.names = sorted(check_name(d, image_dir) for d in os.listdir(image_dir)
                            if os.path.isdir(os.path.join(image_dir, d)))
        if not self.names:
            raise SequenceError(f"{image_dir}: no video folders in it")

    def input_folders(self):
        return [os.path.join(self.root, "JPEGImages"), os.path.join(self.root, "Annotations")]

    def video(self, name):
        check_name(name, "video name")
        return folder_video(name, os.path.join(self.root, "JPEGImages", name),
                            os.path.join(self.root, "Annotations", name))


class SingleVideo:
    """One video given as a frame folder and a mask folder; named after the frame folder."""

    def __init__(self, frame_dir, mask_dir):
        self.frame_dir, self.mask_dir = frame_dir, mask_dir
        self.names = [check_name(os.path.basename(os.path.normpath(os.path.abspath(frame_dir))),
                                 f"--frames {frame_dir}: the video name (the folder's name)")]

    def input_folders(self):
        return [self.frame_dir, self.mask_dir]

    def video(self, name):
        return folder_video(name, self.frame_dir, self.mask_dir)


def index_annotations(masks, count, video):
    """{frame index: path} of the palette PNGs given for a video file: a folder of PNGs named by
    frame index (00000.png, 12.png, ...) or one PNG (frame 0, or the index its name gives)."""
    if os.path.isfile(masks):
        if not masks.lower().endswith(".png"):
            raise SequenceError(f"{masks}: the annotation must be a palette PNG")
        name = stem(masks)
        t = int(name) if name.isdigit() else 0
        files = [(t, masks)]
    elif os.path.isdir(masks):
        files = []
        for name in sorted(os.listdir(masks)):
            if not name.lower().endswith(".png") or name.startswith("."):
                continue
            path = os.path.join(masks, name)
            if not stem(name).isdigit():
                raise SequenceError(f"{path}: annotations of a video file are named by frame index "
                                    "(00000.png for the first frame)")
            files.append((int(stem(name)), path))
        if not files:
            raise SequenceError(f"{masks}: no annotation PNG; give one for the frame where the objects first appear")
    else:
        raise SequenceError(f"{masks}: annotation folder or PNG not found")
    paths = {}
    for t, path in files:
        if t >= count:
            raise SequenceError(f"{path}: annotation of frame {t}, but {video} has {count} frames (0..{count - 1})")
        if t in paths:
            raise SequenceError(f"{path}: a second annotation of frame {t} (also {paths[t]})")
        paths[t] = path
    return paths


class VideoFile:
    """One video file (read with OpenCV) and its annotations: a folder of palette PNGs
    named by frame index, or a single PNG. Named after the file (clip.mp4 -> clip).
    The file is opened and decoded once when this reader is made, so that a file that
    is not a readable video stops the run at setup."""

    def __init__(self, path, masks):
        self.path, self.masks = path, masks
        name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
        self.names = [check_name(name, f"--video {path}: the video name (the file's name without extension)")]
        self.frames = VideoFileFrames(path)
        self.annotations = index_annotations(masks, len(self.frames), path)

    def input_folders(self):
        """What --output must not be, contain or lie inside: the video file and the annotation folder or PNG."""
        return [self.path, self.masks]

    def video(self, name):
        return VideoSpec(name, [], dict(self.annotations), frames=self.frames, inputs=self.input_folders())
