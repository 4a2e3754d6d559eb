"""An interactive segmentation session, with no UI in it: the video, its annotations and masks, the core.

    from interactive.session import Session, load_core
    session = Session(load_core("saves/imsfr.pth"), video="clip.mp4", workdir="work")  # resumes, if any
    session.paint(0, 1, first_mask)               # object 1 on frame 0 (bool H x W): saved at once
    session.stroke(0, 2, [(40, 30), (60, 32)], radius=4)   # a brush stroke for object 2
    session.click(0, 3, [(120, 80, True)])        # object 3 from a click (interactive/tools.py)
    session.undo(); session.redo()
    session.propagate(0)                          # forward to the end
    session.paint(40, 1, fixed_mask)              # a correction on frame 40 ...
    session.propagate(40)                         # ... frames 40.. recomputed, 0..39 kept
    session.export("results/clip")                # palette PNGs + overlay.mp4 (+ a zip)

The session's folder (interactive/store.py) is the truth: every edit is on disk before its call
returns, and ``Session(..., workdir=W)`` on the same video resumes the last session of that video
in W (``new=True``: a new one; ``folder=``: a given one). An edit may name the state it was drawn
on (``expect=session.state(t)``): if the frame changed since, it is refused (``StaleEdit``) and
nothing is written. Edits, undo and redo are refused while a propagation runs.

The core is eval_generic.py's (``load_core``: its preset, memory budget 50, --size 480), so a
propagation from a first-frame mask writes what eval_generic.py writes for it. Propagation
(docs/interactive.md): forward from frame t runs ``InferenceCore.run`` from the first annotated
frame to the end with every annotation as a given mask and the frames t.. as outputs; backward the
same on the reversed frames, from the last annotated frame down to 0, with the frames ..t as
outputs. An annotation introduces the objects that have no earlier annotation in the run's
direction and corrects the others (their mask replaces the prediction and is memorised).
"""
import contextlib
import dataclasses
import os
import threading
import zipfile

import numpy as np

from inference_core.build import build_core
from inference_core.data import SequenceError
from inference_core.data.frame_sources import FrameFiles, VideoFileFrames, list_frames
from inference_core.data.readers import DEFAULT_FPS
from inference_core.video_runner import output_labels, processing_size
from interactive import propagation
from interactive.annotations import Annotations
from interactive.frames import FrameCache, RunFrames, resize_labels, to_size
from interactive.store import MAX_OBJECTS, SessionError, SessionStore, video_digest
from interactive.brush import stroke_mask
from interactive import tools
from util.config import PRESETS, PROCESSING_SIZE
from util.fileio import atomic_path
from util.output_guard import OutputError, claim_outputs, mark_complete, refuse_overlap
from util.overlay import OverlayWriter, blend
from util.palette import DAVIS_PALETTE, AnnotationError, save_palette_png

OVERLAY_NAME = "overlay.mp4"


class StaleEdit(SessionError):
    """An edit drawn on a state of the frame that is no longer the current one."""


def load_core(model, device=None, memory_budget=PRESETS["generic"].memory_budget,
              precision=PRESETS["generic"].precision, **speed):
    """eval_generic.py's inference core for ``model`` (a checkpoint path): its preset (the YouTube-VOS
    procedure, DAVIS 2017 memory settings) with ``memory_budget`` (default 50; None: unbounded) and
    ``precision`` (default auto: util/device.py). Raises CheckpointError (a ValueError) for weights
    that do not fit."""
    config = PRESETS["generic"].replace(memory_budget=memory_budget, precision=precision)
    return build_core(model, config, device, **speed)


def open_source(video=None, images=None):
    """(frame source, SHA-256) of a video file or a folder of frames; SessionError naming the file at fault."""
    if bool(video) == bool(images):
        raise SessionError("give either a video file or a folder of frames")
    try:
        source = VideoFileFrames(video) if video else FrameFiles(list_frames(images))
        source.size(0)  # the first frame must be readable
        for t in range(len(source)) if images else ():
            source.size(t)  # every frame's header, so that a broken file is named now
        digest = video_digest(video) if video else video_digest(frame_paths=source.paths)
    except (SequenceError, OSError, ValueError) as error:
        raise SessionError(str(error)) from None
    return source, digest


def _tool(t, make, *args):
    """``make(*args)`` (an annotation tool), its ValueError a SessionError naming frame t."""
    try:
        return make(*args)
    except ValueError as error:
        raise SessionError(f"frame {t}: {error}") from None


@dataclasses.dataclass
class Propagation:
    """What ``Session.propagate`` did."""
    frames: list          # video frames written, in the order they were written
    cancelled: bool
    processed: int        # frames run through the network (outputs and memorised frames before them)
    seconds: float = None  # with ``propagate(..., timed=True)``: the network's time (InferenceCore.run)


class Session:
    def __init__(self, core, video=None, images=None, workdir=None, size=PROCESSING_SIZE["generic"], new=False,
                 folder=None):
        """``core``: an ``InferenceCore`` (``load_core``); ``video`` a video file or ``images`` a folder of
        frames; ``workdir``: the folder that holds the sessions (``<workdir>/sessions/``). Resumes the last
        session of this video there, unless ``new``; ``folder``: open that session folder (of this video)."""
        if not workdir and not folder:
            raise SessionError("a work folder is needed (workdir=...): the session is kept there")
        self.core = core
        self.source, digest = open_source(video, images)
        self.input_path = os.path.abspath(video or images)
        self.name = os.path.splitext(os.path.basename(os.path.normpath(self.input_path)))[0] or "video"
        self.video_size = tuple(self.source.size(0))
        self.size = processing_size(self.video_size, size)
        self.workdir = os.path.abspath(workdir or os.path.dirname(os.path.dirname(os.path.abspath(folder))))
        found = folder or (None if new else SessionStore.find_last(self.workdir, self.name, digest))
        if found:
            self.store = SessionStore.open(found, digest)
            if self.store.manifest["frames"] != len(self.source) or self.store.video_size != self.video_size:
                raise SessionError(f"{os.path.join(found, 'session.json')}: made for {self.store.manifest['frames']} "
                                   f"frames of {self.store.video_size[1]}x{self.store.video_size[0]}, the video has "
                                   f"{len(self.source)} of {self.video_size[1]}x{self.video_size[0]}")
        else:
            self.store = SessionStore.create(self.workdir, self.name, self.input_path, digest, len(self.source),
                                             self.video_size)
        self.resumed = bool(found)
        self.folder = self.store.folder
        self.id = os.path.basename(self.folder)
        self.frames = FrameCache(self.source, self.store.frames_folder(self.size), self.size)
        self.palette = DAVIS_PALETTE
        self.fps = self.source.fps or DEFAULT_FPS
        self.edits = Annotations(self.store, self.palette)
        self.annotations = self.edits.by_frame  # t -> (labels at the video's size, set of object ids, revision)
        self.version = 0  # counts committed changes (edits, undo, redo, propagation ends), for the page
        self._lock = threading.RLock()
        self._running = None  # what holds the session ("propagation", "export") while it runs
        self._cancel = threading.Event()

    def __len__(self):
        return len(self.source)

    # ---- looking -----------------------------------------------------------------
    def frame(self, t):
        """Frame t at the working size, uint8 (h, w, 3)."""
        return self.frames.image(self._frame_index(t))

    def mask(self, t):
        """The label map (object ids, uint8) of frame t at the video's size; zeros before any result."""
        return self.edits.mask(self._frame_index(t))

    def overlay(self, t, hidden=()):
        """Frame t at the working size with its mask's colours blended over it (objects in ``hidden`` left out)."""
        labels = resize_labels(self.mask(t), self.size)
        if len(hidden):
            labels = np.where(np.isin(labels, list(hidden)), 0, labels).astype(np.uint8)
        return blend(self.frame(t), labels, self.palette)

    def objects(self):
        """The object ids annotated somewhere, sorted."""
        return self.edits.objects()

    def annotated_frames(self):
        return sorted(self.annotations)

    def written_frames(self):
        """Frames that have a mask (an annotation or a propagated result), sorted."""
        return self.store.masks_written()

    def state(self, t):
        """A name of frame t's current state (its mask and annotation): an edit drawn on it passes it as
        ``expect``, and is refused if the frame has changed since."""
        return self.edits.state(self._frame_index(t))

    def snapshot(self, t):
        """(frame t's label map at the video's size, its state), read together."""
        with self._lock:
            return self.mask(t), self.state(t)

    @property
    def shown(self):
        """The frame the page showed last (kept in the manifest)."""
        return self.store.frame

    def show(self, t):
        self.store.set_frame(self._frame_index(t))

    @property
    def running(self):
        return self._running

    # ---- annotating (each call commits one undoable edit) ------------------------------
    def paint(self, t, object_id, mask, expect=None):
        """Object ``object_id``'s mask on frame t (bool (H, W) at the video's or the working size): it
        replaces the object's pixels there, takes them from other objects, and is an annotation there (the
        object starts there, or is corrected there). An empty mask says the object is absent."""
        k = self._object_id(object_id)
        with self._editing(t, expect) as t:
            return self._commit(t, {k: self._video_mask(mask)})

    def stroke(self, t, object_id, points, radius, erase=False, expect=None):
        """A brush (or with ``erase``, eraser) stroke through ``points`` ((x, y) in pixels of the working-size
        frame) of ``radius`` pixels: adds to (removes from) object ``object_id``'s pixels on frame t."""
        k = self._object_id(object_id)
        with self._editing(t, expect) as t:
            painted = _tool(t, stroke_mask, self.size, points, radius)
            current = resize_labels(self.mask(t), self.size) == k
            return self._commit(t, {k: self._video_mask(current & ~painted if erase else current | painted)})

    def click(self, t, object_id, clicks, expect=None):
        """Object ``object_id`` on frame t from clicks ((x, y, positive) in pixels of the working-size frame,
        in the order made; the first positive): its mask there becomes ``interactive.tools.click_mask``'s."""
        k = self._object_id(object_id)
        with self._editing(t, expect) as t:
            mask = _tool(t, tools.click_mask, self.frame(t), clicks)
            return self._commit(t, {k: self._video_mask(mask)})

    def box(self, t, object_id, box, expect=None):
        """Object ``object_id`` on frame t from OpenCV's grabCut proposal for ``box`` (x0, y0, x1, y1 in pixels
        of the working-size frame)."""
        k = self._object_id(object_id)
        with self._editing(t, expect) as t:
            proposal = _tool(t, tools.grabcut_box, self.frame(t), box)
            if not proposal.any():
                raise SessionError(f"frame {t}: grabCut found no object in the box {tuple(box)}; draw a larger "
                                   "box or paint with the brush")
            return self._commit(t, {k: self._video_mask(proposal)})

    def set_mask(self, t, labels, expect=None):
        """Annotate every object of a label map (ids 1..255, e.g. a palette PNG) on frame t: one edit."""
        labels = np.asarray(labels)
        if labels.size and (labels.min() < 0 or labels.max() > MAX_OBJECTS):
            raise SessionError(f"frame {t}: label ids must lie in 0..{MAX_OBJECTS}")
        labels = self._video_mask(labels, "label map")
        ids = [int(k) for k in np.unique(labels) if k != 0]
        if not ids:
            raise SessionError(f"frame {t}: the mask has no object (every pixel is 0)")
        with self._editing(t, expect) as t:
            return self._commit(t, {k: labels == k for k in ids})

    def clear(self, t, object_id, expect=None):
        """Remove object ``object_id``'s annotation from frame t and its pixels from the frame's mask."""
        k = self._object_id(object_id)
        with self._editing(t, expect) as t:
            return self._commit(t, {k: None})

    def undo(self):
        """Take back the last edit (its frame's annotation and mask as they were); returns an EditResult."""
        return self._replay(True)

    def redo(self):
        return self._replay(False)

    def history(self):
        """(edits that undo can take back, edits that redo can make again)."""
        return len(self.edits.done), len(self.edits.undone)

    # ---- propagating ---------------------------------------------------------------
    def propagate(self, t, direction="forward", progress=None, timed=False):
        """Propagate from frame t to the end (``forward``) or to the start (``backward``); frames on the other
        side of t keep their masks. ``progress(frame, done, total)`` is called after each frame written;
        ``cancel()`` (from another thread) stops the run after the frame in progress (the frames written
        so far keep their new masks). ``timed``: also the network's seconds (the device synchronised per
        frame; the benchmarks). Returns a ``Propagation``."""
        if direction not in ("forward", "backward"):
            raise SessionError(f"direction must be 'forward' or 'backward', got {direction!r}")
        with self._holding("propagation"):
            with self._lock:
                t = self._frame_index(t)
                order, outputs = propagation.plan(self.annotations, t, direction == "backward", len(self))
                objects, given = propagation.given_masks(self.annotations, order, self.video_size, self.size,
                                                         self.palette, self.core.device)
                self._cancel.clear()
            written, processed, seconds = [], 0, 0.0 if timed else None
            frames = RunFrames(self.frames, order, self.core.device)
            try:
                for result in self.core.run(frames, given, outputs=outputs, timed=timed):
                    processed += 1
                    if timed:
                        seconds += result.seconds
                    if result.output:
                        frame = order[result.index]
                        save_palette_png(self.store.mask_path(frame), output_labels(result.prob, result.index,
                                                                                    objects), self.palette)
                        written.append(frame)
                        if progress is not None:
                            progress(frame, len(written), len(outputs))
                    if self._cancel.is_set():
                        break
            except (SequenceError, AnnotationError, OSError) as error:
                raise SessionError(f"propagation stopped after {len(written)} frames: {error}") from None
            finally:
                self.version += 1
            return Propagation(written, self._cancel.is_set(), processed, seconds)

    def plan(self, t, direction="forward"):
        """How many frames a propagation from t would write (SessionError if there is nothing to propagate)."""
        with self._lock:
            return len(propagation.plan(self.annotations, self._frame_index(t), direction == "backward", len(self))[1])

    def set_core(self, core):
        """Propagate with another core (another checkpoint) from now on; the annotations and masks stay."""
        with self._holding("model change"):
            self.core = core

    def cancel(self):
        """Stop a running propagation after the frame in progress."""
        self._cancel.set()

    # ---- exporting -----------------------------------------------------------------
    def export(self, folder, zip_path=None):
        """Write every frame's mask as a palette PNG (named as eval_generic.py names them) and the overlay
        ``overlay.mp4`` (working size, the video's frame rate) into ``folder``, with the evaluation scripts'
        output guard (util/output_guard.py: not into the input or the session's folder, no file overwritten
        that this tool did not write); then the same files as ``zip_path`` (default: <workdir>/downloads/
        <name>.zip). Returns the zip's path."""
        with self._holding("export"):
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

    # ---- committing ------------------------------------------------------------------
    @contextlib.contextmanager
    def _holding(self, what):
        """The session for a long action: edits and other long actions are refused until it ends."""
        with self._lock:
            self._refuse_if_running()
            self._running = what
        try:
            yield
        finally:
            self._running = None

    @contextlib.contextmanager
    def _editing(self, t, expect):
        """The lock for one edit of frame t: refused while a long action runs, or if ``expect`` is given and
        is not the frame's current state."""
        with self._lock:
            self._refuse_if_running()
            t = self._frame_index(t)
            if expect is not None and expect != self.state(t):
                raise StaleEdit(f"frame {t} changed in another tab (or by undo) since it was drawn on: "
                                "reload it; nothing was saved")
            yield t

    def _refuse_if_running(self):
        if self._running:
            raise SessionError(f"busy: {'a' if self._running != 'export' else 'an'} {self._running} is running "
                               "(wait for it, or cancel it)")

    def _commit(self, t, changes):
        result = self.edits.commit(t, changes)
        self.version += 1
        return result

    def _replay(self, undo):
        with self._lock:
            self._refuse_if_running()
            result = self.edits.replay(undo)
            self.version += 1
            return result

    # ---- checks ----------------------------------------------------------------------
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

    def close(self):
        """Release the video file (the session's folder stays)."""
        self.frames.close()
