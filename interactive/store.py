"""A session's folder on disk: the user's annotations, the masks shown for every frame, the frame cache.

    <workdir>/sessions/<video>-<first 8 hex digits of the video's SHA-256>[-<n>]/
        session.json              the manifest: the video (path, SHA-256, frame count, size), the frame shown,
                                  and per annotated frame its objects and revision
        annotations/<t>-r<rev>.png  frame t's annotation (palette PNG at the video's size: the pixels of the
                                  objects annotated there; an object annotated with no pixel is absent there)
        masks/<t>.png             the label map shown for frame t (annotation or propagated result)
        frames/<h>x<w>/<t>.png    the frames at the working size (interactive/frames.py)

Every file is written atomically (util/fileio.py: a temporary file, then a rename). An annotation is
committed by writing its new revision's PNG, then the manifest that names it, then removing the
previous revision: a process killed at any point leaves the manifest naming a complete PNG. A folder
whose manifest or annotation PNGs are damaged, or that was made for another video, is refused with
one line naming the file (``SessionError``), and nothing in it is changed.
"""
import hashlib
import json
import os
import re

import numpy as np
from PIL import Image

from util.fileio import atomic_write_bytes, atomic_write_text
from util.palette import DAVIS_PALETTE, AnnotationError, encode_palette_png, load_annotation

FORMAT = "imsfr-interactive-session"
VERSION = 1
MANIFEST = "session.json"
MAX_OBJECTS = 255  # palette ids 1..255
_TEMPORARY = re.compile(r"^\..+\.tmp$")  # util/fileio.py's names for files being written


class SessionError(ValueError):
    """Something the user has to fix (the message says what); the session's state is unchanged."""


def video_digest(video=None, frame_paths=None):
    """SHA-256 (hex) of a video file, or of a folder's frames (their names and contents, in order)."""
    digest = hashlib.sha256()
    for path in [video] if video else frame_paths:
        if frame_paths:
            digest.update(os.path.basename(path).encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _is_id_list(value):
    return isinstance(value, list) and all(type(k) is int and 1 <= k <= MAX_OBJECTS for k in value)


def _is_size(value):
    return isinstance(value, list) and len(value) == 2 and all(type(v) is int and v > 0 for v in value)


def check_manifest(manifest, path):
    """The manifest's fields, typed and in range; SessionError naming ``path`` otherwise."""
    def bad(what):
        raise SessionError(f"{path}: damaged session manifest ({what}); start afresh with --new "
                           "(this folder is left as it is)")

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        bad(f"not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        bad(f"version {manifest.get('version')!r}, this program reads version {VERSION}")
    if not isinstance(manifest.get("video"), str) or not re.fullmatch(r"[0-9a-f]{64}", str(manifest.get("sha256"))):
        bad("'video' must be a path and 'sha256' 64 hex digits")
    frames = manifest.get("frames")
    if type(frames) is not int or frames < 1:
        bad(f"'frames' must be a positive integer, got {frames!r}")
    if not _is_size(manifest.get("video_size")):
        bad(f"'video_size' must be [height, width], got {manifest.get('video_size')!r}")
    if type(manifest.get("frame")) is not int or not 0 <= manifest["frame"] < frames:
        bad(f"'frame' must be a frame index below {frames}, got {manifest.get('frame')!r}")
    annotations = manifest.get("annotations")
    if not isinstance(annotations, dict):
        bad("'annotations' must be an object")
    for key, entry in annotations.items():
        if not key.isdigit() or int(key) >= frames:
            bad(f"annotation frame {key!r} is not a frame index below {frames}")
        if not isinstance(entry, dict) or not _is_id_list(entry.get("objects")) or not entry["objects"] \
                or type(entry.get("revision")) is not int or entry["revision"] < 1:
            bad(f"annotation of frame {key}: expected objects (ids 1..{MAX_OBJECTS}) and a revision >= 1")
    return manifest


class SessionStore:
    """The folder of one session (see the module's docstring); use ``create`` or ``open``."""

    def __init__(self, folder, manifest):
        self.folder, self.manifest = folder, manifest

    # ---- finding, creating and opening -----------------------------------------------
    @staticmethod
    def prefix(name, digest):
        return f"{name}-{digest[:8]}"

    @staticmethod
    def sessions(workdir):
        """Session folders under ``workdir``, most recently changed first."""
        root = os.path.join(workdir, "sessions")
        if not os.path.isdir(root):
            return []
        folders = [os.path.join(root, name) for name in os.listdir(root)
                   if os.path.isfile(os.path.join(root, name, MANIFEST))]
        return sorted(folders, key=lambda f: os.stat(os.path.join(f, MANIFEST)).st_mtime_ns, reverse=True)

    @classmethod
    def find_last(cls, workdir, name, digest):
        """The most recently changed session folder of this video (by name and digest), or None."""
        prefix = cls.prefix(name, digest)
        for folder in cls.sessions(workdir):
            base = os.path.basename(folder)
            if base == prefix or re.fullmatch(re.escape(prefix) + r"-\d+", base):
                return folder
        return None

    @classmethod
    def create(cls, workdir, name, video, digest, frames, video_size):
        """A new session folder for a video (``<name>-<digest[:8]>``, or with ``-2``, ``-3``... if taken)."""
        root = os.path.join(workdir, "sessions")
        os.makedirs(root, exist_ok=True)
        base, n = cls.prefix(name, digest), 1
        while True:
            folder = os.path.join(root, base if n == 1 else f"{base}-{n}")
            try:
                os.mkdir(folder)
                break
            except FileExistsError:
                n += 1
        for part in ("annotations", "masks"):
            os.makedirs(os.path.join(folder, part))
        store = cls(folder, {"format": FORMAT, "version": VERSION, "video": os.path.abspath(video), "sha256": digest,
                             "frames": int(frames), "video_size": [int(v) for v in video_size], "frame": 0,
                             "annotations": {}})
        store._write_manifest()
        return store

    @classmethod
    def open(cls, folder, digest=None):
        """An existing session folder, checked (manifest, annotation PNGs, mask headers); with ``digest``, it
        must be that video's. Files that an interrupted write left (temporary files, superseded
        revisions) are removed; nothing else is written."""
        path = os.path.join(folder, MANIFEST)
        try:
            with open(path, encoding="utf-8") as f:
                manifest = json.load(f)
        except FileNotFoundError:
            raise SessionError(f"{path}: no session manifest (not a session folder)") from None
        except (OSError, ValueError) as error:
            raise SessionError(f"{path}: damaged session manifest ({error}); start afresh with --new "
                               "(this folder is left as it is)") from None
        check_manifest(manifest, path)
        if digest is not None and manifest["sha256"] != digest:
            raise SessionError(f"{path}: this session is of another video (SHA-256 {manifest['sha256'][:12]}..., "
                               f"the video given has {digest[:12]}...); start afresh with --new")
        store = cls(folder, manifest)
        store.annotations()  # every annotation readable, at the video's size, with the manifest's objects
        store._check_masks()
        store._remove_leftovers()
        return store

    # ---- annotations ------------------------------------------------------------------
    @property
    def video_size(self):
        return tuple(self.manifest["video_size"])

    def annotation_path(self, t, revision):
        return os.path.join(self.folder, "annotations", f"{t:06d}-r{revision}.png")

    def annotations(self):
        """{frame: (labels uint8 at the video's size, set of object ids, revision)} from the files."""
        found = {}
        for key, entry in self.manifest["annotations"].items():
            t, objects = int(key), set(entry["objects"])
            path = self.annotation_path(t, entry["revision"])
            try:
                labels = load_annotation(path, allow_grayscale=False)
            except AnnotationError as error:
                raise SessionError(f"{error} (the annotation of frame {t}; this folder is left as it is)") from None
            if labels.shape != self.video_size:
                raise SessionError(f"{path}: annotation is {labels.shape[1]}x{labels.shape[0]}, the video "
                                   f"{self.video_size[1]}x{self.video_size[0]} (this folder is left as it is)")
            stray = sorted(set(np.unique(labels).tolist()) - objects - {0})
            if stray:
                raise SessionError(f"{path}: object ids {stray} are not among the manifest's {sorted(objects)} "
                                   "for this frame (this folder is left as it is)")
            found[t] = (labels, objects, entry["revision"])
        return found

    def annotation_bytes(self, t):
        """The PNG bytes of frame t's annotation (b"" if none)."""
        entry = self.manifest["annotations"].get(str(t))
        if entry is None:
            return b""
        with open(self.annotation_path(t, entry["revision"]), "rb") as f:
            return f.read()

    def write_annotation(self, t, labels, objects, data=None):
        """Commit frame t's annotation (``labels`` with ``objects``; no objects: no annotation there) as a new
        revision, or the PNG bytes ``data`` of an earlier one; returns the PNG bytes written (b"" if none)."""
        entries = self.manifest["annotations"]
        previous = entries.get(str(t))
        if objects:
            revision = previous["revision"] + 1 if previous else 1
            data = data if data is not None else encode_palette_png(labels, DAVIS_PALETTE)
            atomic_write_bytes(self.annotation_path(t, revision), data)
            entries[str(t)] = {"objects": sorted(int(k) for k in objects), "revision": revision}
        else:
            data = b""
            entries.pop(str(t), None)
        self.manifest["annotations"] = dict(sorted(entries.items(), key=lambda item: int(item[0])))
        self._write_manifest()
        if previous:
            _remove(self.annotation_path(t, previous["revision"]))
        return data

    # ---- masks, the frame shown ---------------------------------------------------------
    def mask_path(self, t):
        return os.path.join(self.folder, "masks", f"{t:06d}.png")

    def mask_bytes(self, t):
        """The PNG bytes of frame t's mask (b"" if it has none yet)."""
        try:
            with open(self.mask_path(t), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def write_mask_bytes(self, t, data):
        if data:
            atomic_write_bytes(self.mask_path(t), data)
        else:
            _remove(self.mask_path(t))

    def masks_written(self):
        """Sorted frame indices that have a mask."""
        names = os.listdir(os.path.join(self.folder, "masks"))
        return sorted(int(n[:-4]) for n in names if n.endswith(".png") and n[:-4].isdigit())

    def frames_folder(self, size):
        return os.path.join(self.folder, "frames", f"{size[0]}x{size[1]}")

    @property
    def frame(self):
        return self.manifest["frame"]

    def set_frame(self, t):
        if t != self.manifest["frame"]:
            self.manifest["frame"] = int(t)
            self._write_manifest()

    # ---- helpers -----------------------------------------------------------------------
    def _write_manifest(self):
        atomic_write_text(os.path.join(self.folder, MANIFEST), json.dumps(self.manifest, indent=1) + "\n")

    def _check_masks(self):
        for t in self.masks_written():
            path = self.mask_path(t)
            try:
                with Image.open(path) as image:
                    ok = image.mode == "P" and image.size[::-1] == self.video_size
            except Exception as error:  # PIL raises many types for broken files
                raise SessionError(f"{path}: unreadable mask ({error}); this folder is left as it is") from None
            if not ok or t >= self.manifest["frames"]:
                raise SessionError(f"{path}: not a mask of this session (a palette PNG of "
                                   f"{self.video_size[1]}x{self.video_size[0]} for a frame below "
                                   f"{self.manifest['frames']}); this folder is left as it is")

    def _remove_leftovers(self):
        named = {os.path.basename(self.annotation_path(int(t), e["revision"]))
                 for t, e in self.manifest["annotations"].items()}
        for part in ("annotations", "masks"):
            folder = os.path.join(self.folder, part)
            for name in os.listdir(folder):
                if _TEMPORARY.match(name) or (part == "annotations" and name.endswith(".png") and name not in named):
                    _remove(os.path.join(folder, name))


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
