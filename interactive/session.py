"""An interactive segmentation session, with no UI in it: the video, the masks, the core.

    from interactive.session import Session, load_core
    session = Session(load_core("saves/imsfr.pth"), video="clip.mp4", workdir="work")
    session.paint(0, 1, first_mask)               # object 1 on frame 0 (bool H x W)
    session.propagate(0)                          # forward to the end
    session.paint(40, 1, fixed_mask)              # a correction on frame 40 ...
    session.propagate(40)                         # ... frames 40.. recomputed, 0..39 kept
    session.export("results/clip")                # palette PNGs + overlay.mp4 (+ a zip)

The frames are decoded on request and cached at the working size on disk
(interactive/frames.py); the masks of every frame are palette PNGs in the session's
folder; only the user's annotations (a label map per annotated frame) are in memory.
The core is eval_generic.py's (``load_core``: its preset, memory budget 50, --size 480),
so a propagation from a first-frame mask writes what eval_generic.py writes for it.

Propagation (docs/interactive.md): forward from frame t runs ``InferenceCore.run`` from
the first annotated frame to the end with every annotation as a given mask and the
frames t.. as outputs; backward the same on the reversed frames, from the last annotated
frame down to 0, with the frames ..t as outputs. An annotation introduces the objects
that have no earlier annotation in the run's direction (as the YouTube-VOS procedure
introduces objects) and corrects the others (their mask replaces the prediction there
and is memorised). Only output frames are written.
"""
import contextlib
import dataclasses
import os
import tempfile
import threading
import zipfile

import numpy as np

from dataset.eval_datasets import DEFAULT_FPS, VideoObjects
from dataset.frame_sources import FrameFiles, VideoFileFrames, list_frames
from inference_core.cli import build_core
from inference_core.video_runner import mask_tensor, output_labels, processing_size
from interactive.frames import FrameCache, RunFrames, resize_labels, to_size
from interactive.tools import grabcut_box
from util.config import PRESETS, PROCESSING_SIZE
from util.davis_metrics import SequenceError
from util.fileio import atomic_path
from util.output_guard import OutputError, claim_outputs, mark_complete, refuse_overlap
from util.overlay import OverlayWriter, blend
from util.palette import DAVIS_PALETTE, AnnotationError, load_annotation, save_palette_png

MAX_OBJECTS = 255  # palette ids 1..255
OVERLAY_NAME = "overlay.mp4"


class SessionError(ValueError):
    """Something the user has to fix (the message says what); the session's state is unchanged."""


def with_object(labels, k, mask=None):
    """A copy of the label map ``labels`` where object k has exactly the pixels of ``mask`` (None: none)."""
    labels = np.where(labels == k, 0, labels).astype(np.uint8)
    if mask is not None:
        labels[mask] = k
    return labels


def load_core(model, device=None, memory_budget=PRESETS["generic"].memory_budget, **speed):
    """eval_generic.py's inference core for ``model`` (a checkpoint path): its preset (the YouTube-VOS
    procedure, DAVIS 2017 memory settings) with ``memory_budget`` (default 50; None: unbounded).
    Raises CheckpointError (a ValueError) for weights that do not fit."""
    return build_core(model, PRESETS["generic"].replace(memory_budget=memory_budget), device, **speed)


def open_source(video=None, images=None):
    """The frame source of a video file or a folder of frames (SessionError with the file at fault)."""
    if bool(video) == bool(images):
        raise SessionError("give either a video file or a folder of frames")
    try:
        return VideoFileFrames(video) if video else FrameFiles(list_frames(images))
    except SequenceError as error:
        raise SessionError(str(error)) from None


@dataclasses.dataclass
class Propagation:
    """What ``Session.propagate`` did."""
    frames: list          # video frames written, in the order they were written
    cancelled: bool
    seconds: float        # in InferenceCore.step (network time), all processed frames
    processed: int        # frames run through the network (outputs and memorised frames before them)


class Session:
    def __init__(self, core, video=None, images=None, workdir=None, size=PROCESSING_SIZE["generic"]):
        """``core``: an ``InferenceCore`` (``load_core``); ``video`` a video file or ``images`` a folder of
        frames; ``workdir``: where the session's folder goes (default: the system's temporary folder)."""
        self.core = core
        self.source = open_source(video, images)
        self.input_path = os.path.abspath(video or images)
        self.name = os.path.splitext(os.path.basename(os.path.normpath(self.input_path)))[0] or "video"
        self.video_size = tuple(self.source.size(0))
        self.size = processing_size(self.video_size, size)
        self.workdir = os.path.abspath(workdir or tempfile.gettempdir())
        os.makedirs(os.path.join(self.workdir, "sessions"), exist_ok=True)
        self.folder = tempfile.mkdtemp(prefix=self.name + "-", dir=os.path.join(self.workdir, "sessions"))
        self.frames = FrameCache(self.source, os.path.join(self.folder, "frames"), self.size)
        os.makedirs(os.path.join(self.folder, "masks"))
        self.palette = DAVIS_PALETTE
        self.fps = self.source.fps or DEFAULT_FPS
        self.annotations = {}  # t -> (labels uint8 at the video size, set of the objects annotated there)
        self._lock = threading.Lock()
        self._cancel = threading.Event()

    def __len__(self):
        return len(self.source)

    # ---- looking -----------------------------------------------------------------
    def frame(self, t):
        """Frame t at the working size, uint8 (h, w, 3)."""
        return self.frames.image(self._frame_index(t))

    def mask(self, t):
        """The label map (object ids, uint8) of frame t at the video's size; zeros before any result."""
        path = self._mask_path(self._frame_index(t))
        return load_annotation(path) if os.path.isfile(path) else np.zeros(self.video_size, np.uint8)

    def overlay(self, t, hidden=()):
        """Frame t at the working size with its mask's colours blended over it (objects in ``hidden`` left out)."""
        labels = resize_labels(self.mask(t), self.size)
        if len(hidden):
            labels = np.where(np.isin(labels, list(hidden)), 0, labels).astype(np.uint8)
        return blend(self.frame(t), labels, self.palette)

    def objects(self):
        """The object ids annotated somewhere, sorted."""
        return sorted({k for _, objects in self.annotations.values() for k in objects})

    def annotated_frames(self):
        return sorted(self.annotations)

    # ---- annotating ----------------------------------------------------------------
    def paint(self, t, object_id, mask):
        """Give object ``object_id``'s mask on frame t (bool (H, W) at the video's or the working size): it
        replaces the object's pixels on that frame, takes them from other objects, and is an annotation
        there (the object starts there, or is corrected there). An empty mask says the object is absent."""
        with self._busy():
            t, k = self._frame_index(t), self._object_id(object_id)
            mask = self._video_mask(mask)
            labels, objects = self.annotations.get(t, (np.zeros(self.video_size, np.uint8), set()))
            self.annotations[t] = (with_object(labels, k, mask), objects | {k})
            self._save_mask(t, with_object(self.mask(t), k, mask))

    def set_mask(self, t, labels):
        """Annotate every object of a label map (ids 1..255, e.g. a palette PNG) on frame t."""
        labels = np.asarray(labels)
        if labels.size and (labels.min() < 0 or labels.max() > MAX_OBJECTS):
            raise SessionError(f"frame {t}: label ids must lie in 0..{MAX_OBJECTS}")
        labels = self._video_mask(labels, "label map")
        ids = [int(k) for k in np.unique(labels) if k != 0]
        if not ids:
            raise SessionError(f"frame {t}: the mask has no object (every pixel is 0)")
        for k in ids:
            self.paint(t, k, labels == k)

    def box(self, t, object_id, box):
        """Paint object ``object_id`` on frame t with OpenCV's grabCut proposal for ``box`` (x0, y0, x1, y1 in
        pixels of the working-size frame); returns the proposal (bool, working size)."""
        try:
            proposal = grabcut_box(self.frame(t), box)
        except ValueError as error:
            raise SessionError(f"frame {t}: {error}") from None
        if not proposal.any():
            raise SessionError(f"frame {t}: grabCut found no object in the box {tuple(box)}; draw a larger box "
                               "or paint with the brush")
        self.paint(t, object_id, proposal)
        return proposal

    def clear(self, t, object_id):
        """Remove object ``object_id``'s annotation from frame t and its pixels from the frame's mask."""
        with self._busy():
            t, k = self._frame_index(t), self._object_id(object_id)
            if t in self.annotations:
                labels, objects = self.annotations.pop(t)
                if objects - {k}:
                    self.annotations[t] = (with_object(labels, k), objects - {k})
            self._save_mask(t, with_object(self.mask(t), k))

    # ---- propagating ---------------------------------------------------------------
    def propagate(self, t, direction="forward", progress=None):
        """Propagate from frame t to the end (``forward``) or to the start (``backward``); frames on the other
        side of t keep their masks. ``progress(done, total)`` is called after each frame written; ``cancel()``
        (from another thread) stops the run between two frames (the frames written so far keep their new
        masks). Returns a ``Propagation``."""
        if direction not in ("forward", "backward"):
            raise SessionError(f"direction must be 'forward' or 'backward', got {direction!r}")
        with self._busy():
            t = self._frame_index(t)
            order, outputs = self._plan(t, direction == "backward")
            objects, given = self._given(order)
            self._cancel.clear()
            written, seconds, processed = [], 0.0, 0
            frames = RunFrames(self.frames, order, self.core.device)
            try:
                for result in self.core.run(frames, given, outputs=outputs):
                    seconds += result.seconds
                    processed += 1
                    if result.output:
                        frame = order[result.index]
                        self._save_mask(frame, output_labels(result.prob, result.index, objects))
                        written.append(frame)
                        if progress is not None:
                            progress(len(written), len(outputs))
                    if self._cancel.is_set():
                        break
            except (SequenceError, AnnotationError, OSError) as error:
                raise SessionError(f"propagation stopped after {len(written)} frames: {error}") from None
            return Propagation(written, self._cancel.is_set(), seconds, processed)

    def set_core(self, core):
        """Propagate with another core (another checkpoint) from now on; the annotations and masks stay."""
        with self._busy():
            self.core = core

    def cancel(self):
        """Stop a running propagation after the frame in progress."""
        self._cancel.set()

    def _plan(self, t, backward):
        """(video frames in run order, run positions to output)."""
        starts = [f for f, (labels, objects) in self.annotations.items() if np.isin(labels, list(objects)).any()]
        if not starts:
            raise SessionError("no mask to propagate: draw an object first (brush or box) on some frame")
        if backward:
            order = list(range(max(starts), -1, -1))
            outputs = {i for i, f in enumerate(order) if f <= t}
        else:
            order = list(range(min(starts), len(self)))
            outputs = {i for i, f in enumerate(order) if f >= t}
        return order, outputs

    def _given(self, order):
        """The run's objects (``VideoObjects``, keyed by run position, for ``output_labels``) and the core's
        ``given`` {position: (internal-id mask, new ids, corrected ids)}."""
        introduced, given, ids, new, corrected = [], {}, {}, {}, {}
        for i, f in enumerate(order):
            if f not in self.annotations:
                continue
            labels, objects = self.annotations[f]
            new[i] = [k for k in sorted(objects) if k not in introduced and (labels == k).any()]
            corrected[i] = [k for k in sorted(objects) if k in introduced]
            ids[i] = new[i] + corrected[i]
            if ids[i]:
                introduced += new[i]
                given[i] = np.where(np.isin(labels, ids[i]), labels, 0).astype(np.uint8)
        to_original = np.array([0, *introduced], dtype=np.uint8)
        to_internal = np.zeros(256, dtype=np.int64)
        to_internal[to_original] = np.arange(len(to_original))
        objects = VideoObjects(given, {i: ids[i] for i in given}, to_original, to_internal, self.video_size,
                               self.palette)
        device = self.core.device
        core_given = {i: (mask_tensor(to_internal[given[i]], self.size, device),
                          [int(to_internal[k]) for k in new[i]], [int(to_internal[k]) for k in corrected[i]])
                      for i in given}
        return objects, core_given

    # ---- exporting -----------------------------------------------------------------
    def export(self, folder, zip_path=None):
        """Write every frame's mask as a palette PNG (named as eval_generic.py names them) and the overlay
        ``overlay.mp4`` (working size, the video's frame rate) into ``folder``, with the evaluation scripts'
        output guard (util/output_guard.py: not into the input or the session's folder, no file overwritten
        that this tool did not write); then the same files as ``zip_path`` (default: <workdir>/downloads/
        <name>.zip). Returns the zip's path."""
        with self._busy():
            names = [self.source.name(t) + ".png" for t in range(len(self))]
            expected = names + [OVERLAY_NAME]
            try:
                refuse_overlap(folder, [self.input_path, self.folder], "export folder")
                claim_outputs(folder, expected)
            except OutputError as error:
                raise SessionError(str(error)) from None
            with OverlayWriter(os.path.join(folder, OVERLAY_NAME), "mp4", len(self), self.palette,
                               self.fps) as writer:
                for t, name in enumerate(names):
                    labels = self.mask(t)
                    save_palette_png(os.path.join(folder, name), labels, self.palette)
                    writer.add(self.frame(t), resize_labels(labels, self.size))
            mark_complete(folder, expected)
            zip_path = zip_path or os.path.join(self.workdir, "downloads", self.name + ".zip")
            with atomic_path(zip_path, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
                for name in expected:
                    archive.write(os.path.join(folder, name), f"{self.name}/{name}")
            return zip_path

    # ---- helpers -------------------------------------------------------------------
    @contextlib.contextmanager
    def _busy(self):
        """The session's lock, or a SessionError while a propagation or an export holds it."""
        if not self._lock.acquire(blocking=False):
            raise SessionError("busy: a propagation or an export is running (wait for it, or cancel it)")
        try:
            yield
        finally:
            self._lock.release()

    def _frame_index(self, t):
        if not isinstance(t, (int, np.integer)) or not 0 <= t < len(self):
            raise SessionError(f"frame {t} does not exist: the video has {len(self)} frames (0..{len(self) - 1})")
        return int(t)

    def _object_id(self, k):
        if not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_OBJECTS:
            raise SessionError(f"object ids are 1..{MAX_OBJECTS} (the palette's), got {k}")
        return int(k)

    def _video_mask(self, mask, what="mask"):
        mask = np.asarray(mask)
        if mask.shape not in (self.video_size, self.size):
            raise SessionError(f"{what} is {mask.shape[1] if mask.ndim > 1 else '?'}x{mask.shape[0]} (WxH); "
                               f"expected the video's {self.video_size[1]}x{self.video_size[0]} or the working "
                               f"size {self.size[1]}x{self.size[0]}")
        return to_size(mask if mask.dtype == bool or what != "mask" else mask > 0, self.video_size, what)

    def _mask_path(self, t):
        return os.path.join(self.folder, "masks", f"{t:06d}.png")

    def _save_mask(self, t, labels):
        save_palette_png(self._mask_path(t), labels, self.palette)

    def close(self):
        """Release the video file (the session's folder stays)."""
        self.frames.close()
