"""The interactive demo's web UI (Gradio Blocks): a thin layer over ``interactive.session.Session``.

One session at a time (a local, single-user app): the video given on the command line
or opened in the page. Every handler turns a user error into a message in the page
(the status line and a toast) and in the log, and leaves the session as it was.
This is the only module that imports gradio.
"""
import logging
import os
import shutil
import tempfile
import time

import gradio as gr
import numpy as np

from interactive.frames import resize_labels
from interactive.session import MAX_OBJECTS, Session, SessionError, load_core
from model.checkpoint import CheckpointError
from util.davis_metrics import SequenceError
from util.overlay import blend

log = logging.getLogger("imsfr.interactive")
VIDEO_TYPES = [".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"]
PLAY_INTERVAL = 0.2  # seconds per frame while playing
VIEW_HEIGHT = 400  # pixels of the result image on the page
VIEW_SIDE = 360  # small videos are shown enlarged (by an integer factor) to at least this shorter side
# The browser refuses an upload over the size limit before sending it, with a toast: pass its text to the
# server (a hidden textbox's change event) so that the log has it too.
CLIENT_JS = """() => {
  const seen = new WeakSet();
  let count = 0;  // a new value each time, so that the same message twice is a change twice
  new MutationObserver(() => {
    for (const toast of document.querySelectorAll('.toast-body')) {
      if (seen.has(toast)) continue;
      seen.add(toast);
      if (!toast.innerText.includes('maximum allowed size')) continue;
      const box = document.querySelector('#client_log textarea');
      if (!box) continue;
      box.value = `${++count}|${toast.innerText.replace(/\\s*×\\s*/g, ' ').trim()}`;
      box.dispatchEvent(new Event('input', {bubbles: true}));
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""
USER_ERRORS = (SessionError, SequenceError, CheckpointError, ValueError, OSError)


def colour(k, palette):
    r, g, b = palette[3 * k:3 * k + 3]
    return f"#{r:02x}{g:02x}{b:02x}"


class DemoApp:
    """The app's state: the core, the session and the settings (see ``interactive_demo.py``)."""

    def __init__(self, core, session=None, workdir=".", output=None, size=480, max_upload_mb=500,
                 model=None, device=None, memory_budget=None):
        self.core, self.session = core, session
        self.workdir, self.size, self.max_upload_mb = workdir, size, max_upload_mb
        self.output = output
        self.model, self.device, self.memory_budget = model, device, memory_budget
        self.last_box = None  # first corner (x, y) of a box, clicked on the result image

    # ---- what the page shows -------------------------------------------------------
    def export_folder(self):
        if self.output:
            return self.output
        return os.path.join(self.workdir, "export", self.session.name if self.session else "video")

    def header(self, t=0, k=1):
        if self.session is None:
            return "No video: open one in 'Video and model' below."
        s = self.session
        return (f"**{s.name}**: {len(s)} frames, {s.video_size[1]}x{s.video_size[0]}, working size "
                f"{s.size[1]}x{s.size[0]}; annotated frames: {s.annotated_frames() or 'none'}; "
                f"showing frame {int(t)}, object {int(k)}")

    def view_scale(self):
        """The integer factor the result image is enlarged by (clicks are divided by it)."""
        return max(1, VIEW_SIDE // min(self.session.size)) if self.session else 1

    def view(self, t, hidden):
        if self.session is None:
            return None
        image, scale = self.session.overlay(int(t), [int(k) for k in hidden or []]), self.view_scale()
        return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1) if scale > 1 else image

    def editor_parts(self, t, k):
        """The editor's value for object k on frame t (the frame with the other objects as background,
        object k's mask as the layer that the brush and the eraser change) and its brush."""
        s = self.session
        if s is None:
            return None, gr.Brush()
        t, k = int(t), int(k)
        labels = resize_labels(s.mask(t), s.size)
        others = np.where(labels == k, 0, labels).astype(np.uint8)
        layer = np.zeros((*s.size, 4), np.uint8)
        layer[labels == k] = (*bytes.fromhex(colour(k, s.palette)[1:]), 255)
        brush = gr.Brush(colors=[colour(k, s.palette)], default_color=colour(k, s.palette), color_mode="fixed",
                         default_size=max(2, min(s.size) // 40))
        return {"background": blend(s.frame(t), others, s.palette), "layers": [layer], "composite": None}, brush

    def editor(self, t, k):
        value, brush = self.editor_parts(t, k)
        return gr.ImageEditor(value=value, brush=brush)

    def objects(self):
        return gr.CheckboxGroup(choices=[str(k) for k in self.session.objects()] if self.session else [])

    def legend(self):
        if self.session is None or not self.session.objects():
            return ""
        return " ".join(f'<span style="background:{colour(k, self.session.palette)};color:white;padding:2px 6px;'
                        f'border-radius:4px">object {k}</span>' for k in self.session.objects())

    # ---- actions (each returns the status line first) -------------------------------
    def fail(self, error, outputs):
        message = str(error) or type(error).__name__
        log.warning("%s", message)
        gr.Warning(message)
        return (f"**Error:** {message}", *[gr.skip()] * outputs)

    def refresh(self, status, t, k, hidden):
        """status, result image, editor, objects, legend, header."""
        return status, self.view(t, hidden), self.editor(t, k), self.objects(), self.legend(), self.header(t, k)

    def show(self, t, k, hidden):
        try:
            return self.refresh(gr.skip(), t, self.object_id(k), hidden)
        except USER_ERRORS as error:
            return self.fail(error, 5)

    def show_view(self, t, hidden):
        try:
            return gr.skip(), self.view(t, hidden)
        except USER_ERRORS as error:
            return self.fail(error, 1)

    def painted(self, value):
        """The mask of the editor's layer (bool, working size), or None without a layer."""
        layers = (value or {}).get("layers") or []
        if not layers or layers[0] is None:
            return None
        layer = np.asarray(layers[0])
        painted = layer[..., 3] > 0 if layer.ndim == 3 and layer.shape[2] == 4 else layer.any(axis=-1)
        return resize_labels(painted.astype(np.uint8), self.session.size).astype(bool)

    def sync(self, value, t, k):
        """Apply the editor's layer to object k on frame t if it differs from the object's mask there;
        returns True if it did."""
        painted = self.painted(value)
        current = resize_labels(self.session.mask(int(t)), self.session.size) == int(k)
        if painted is None or np.array_equal(painted, current):
            return False
        self.session.paint(int(t), int(k), painted)
        log.info("frame %d: object %d painted (%d pixels)", int(t), int(k), int(painted.sum()))
        return True

    def save(self, value, t, k, hidden):
        try:
            self.require_session()
            self.object_id(k)
            changed = self.sync(value, t, k)
            status = f"Frame {int(t)}: object {int(k)} {'painted' if changed else 'unchanged (nothing painted)'}."
            return self.refresh(status, t, k, hidden)
        except USER_ERRORS as error:
            return self.fail(error, 5)

    def click(self, event: gr.SelectData, t, k, hidden):
        """Clicks on the result image: the first gives a box corner, the second the opposite one (grabCut)."""
        try:
            self.require_session()
            self.object_id(k)
            x, y = (int(v) // self.view_scale() for v in event.index[:2])
            if self.last_box is None or self.last_box[0] != (int(t), int(k)):
                self.last_box = ((int(t), int(k)), (x, y))
                return (f"Box for object {int(k)}: corner ({x}, {y}); click the opposite corner.",
                        *[gr.skip()] * 5)
            (x0, y0), self.last_box = self.last_box[1], None
            proposal = self.session.box(int(t), int(k), (x0, y0, x, y))
            log.info("frame %d: object %d from a box (%d, %d)-(%d, %d), grabCut %d pixels", int(t), int(k),
                     x0, y0, x, y, int(proposal.sum()))
            return self.refresh(f"Frame {int(t)}: object {int(k)} from the box ({x0}, {y0})-({x}, {y}) "
                                f"(grabCut); refine it with the brush.", t, k, hidden)
        except USER_ERRORS as error:
            self.last_box = None
            return self.fail(error, 5)

    def clear(self, t, k, hidden):
        try:
            self.require_session()
            self.session.clear(int(t), self.object_id(k))
            return self.refresh(f"Frame {int(t)}: object {int(k)} cleared.", t, k, hidden)
        except USER_ERRORS as error:
            return self.fail(error, 5)

    def forward(self, value, t, k, hidden, progress=gr.Progress()):
        return self.propagate("forward", value, t, k, hidden, progress)

    def backward(self, value, t, k, hidden, progress=gr.Progress()):
        return self.propagate("backward", value, t, k, hidden, progress)

    def propagate(self, direction, value, t, k, hidden, progress):
        try:
            self.require_session()
            self.sync(value, t, k)
            start = time.perf_counter()
            progress(0, desc=f"Propagating {direction}")
            result = self.session.propagate(int(t), direction, progress=lambda done, total: progress(
                done / total, desc=f"Propagating {direction}: {done}/{total} frames"))
            per_frame = result.seconds / max(1, result.processed)
            status = (f"Propagated {direction} from frame {int(t)}: {len(result.frames)} frames written"
                      f"{' (cancelled)' if result.cancelled else ''} in {time.perf_counter() - start:.1f} s "
                      f"({1000 * per_frame:.0f} ms of network time per processed frame).")
            log.info("%s", status)
            return self.refresh(status, t, k, hidden)
        except USER_ERRORS as error:
            return self.fail(error, 5)

    def cancel(self):
        if self.session is not None:
            self.session.cancel()
        return "Cancelling after the frame in progress..."

    def export(self, folder):
        try:
            self.require_session()
            folder = (folder or "").strip() or self.export_folder()
            path = self.session.export(folder)
            log.info("exported %s and %s", folder, path)
            return f"Exported {len(self.session)} palette PNGs and overlay.mp4 to {folder}; zip below.", path
        except USER_ERRORS as error:
            return self.fail(error, 1)

    def open_video(self, path, t, k, hidden):
        """An uploaded video (a copy under the work folder); the current session stays if it cannot be opened."""
        try:
            if not path:
                raise SessionError("no file received")
            size = os.path.getsize(path)
            if size > self.max_upload_mb * 2**20:
                raise SessionError(f"{os.path.basename(path)}: {size / 2**20:.0f} MB is over the upload limit "
                                   f"of {self.max_upload_mb} MB (--max_upload_mb)")
            uploads = os.path.join(self.workdir, "uploads")
            os.makedirs(uploads, exist_ok=True)
            folder = tempfile.mkdtemp(dir=uploads)  # its own folder: never replaces the open video
            target = os.path.join(folder, os.path.basename(path))
            shutil.copyfile(path, target)
            try:
                session = Session(self.core, video=target, workdir=self.workdir, size=self.size)
            except USER_ERRORS:
                shutil.rmtree(folder)  # keep no unusable upload
                raise
        except USER_ERRORS as error:
            return self.fail(error, 7)
        if self.session is not None:
            self.session.close()
        self.session, self.last_box = session, None
        log.info("opened %s: %d frames", target, len(session))
        slider = gr.Slider(minimum=0, maximum=len(session) - 1, value=0, step=1)
        return (*self.refresh(f"Opened {os.path.basename(target)} ({len(session)} frames).", 0, k, []), slider,
                self.export_folder())

    def client_error(self, text):
        """A message the browser showed without asking the server (an upload over the size limit)."""
        message = " ".join((text or "").partition("|")[2].split()).removeprefix("Error ")
        if not message:
            return gr.skip()
        log.warning("browser: %s (--max_upload_mb %d)", message, self.max_upload_mb)
        return f"**Error:** {message} (the limit is --max_upload_mb {self.max_upload_mb})"

    def load_model(self, path):
        try:
            core = load_core(path.strip(), self.device, self.memory_budget)
            if self.session is not None:
                self.session.set_core(core)
        except (CheckpointError, ValueError, RuntimeError, OSError) as error:
            return self.fail(error, 0)[0]
        self.core = core
        log.info("model %s loaded", path)
        return f"Model {path} loaded; the annotations are kept (propagate again to use it)."

    def play(self, playing):
        return not playing, gr.Timer(active=not playing), gr.Button("Pause" if not playing else "Play")

    def tick(self, t, playing):
        if self.session is None or not playing:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        if int(t) + 1 >= len(self.session):
            return gr.skip(), False, gr.Timer(active=False), gr.Button("Play")
        return int(t) + 1, gr.skip(), gr.skip(), gr.skip()

    # ---- checks ----------------------------------------------------------------------
    def require_session(self):
        if self.session is None:
            raise SessionError("no video: open one first")

    @staticmethod
    def object_id(k):
        if k is None or not 1 <= k <= MAX_OBJECTS or int(k) != k:
            raise SessionError(f"object ids are 1..{MAX_OBJECTS}")
        return int(k)


def build(app: DemoApp):
    """The page."""
    count = len(app.session) if app.session else 1
    with gr.Blocks(title="IMSFR interactive segmentation") as page:
        gr.Markdown("## IMSFR interactive video object segmentation")
        header = gr.Markdown(app.header(0, 1), elem_id="header")
        status = gr.Markdown("Paint an object (or click two corners of a box on the result), then propagate.",
                             elem_id="status")
        value, brush = app.editor_parts(0, 1)
        with gr.Row():
            with gr.Column():
                editor = gr.ImageEditor(label="Annotate: brush and eraser change the selected object", type="numpy",
                                        elem_id="editor", sources=(), transforms=(), layers=False, format="png",
                                        eraser=gr.Eraser(), brush=brush, value=value, height=VIEW_HEIGHT + 60)
                with gr.Row():
                    obj = gr.Number(value=1, minimum=1, maximum=MAX_OBJECTS, precision=0, label="Object",
                                    elem_id="object")
                    save = gr.Button("Use painted mask", elem_id="save", variant="primary")
                    clear = gr.Button("Clear object on this frame", elem_id="clear")
                legend = gr.HTML(app.legend(), elem_id="legend")
            with gr.Column():
                view = gr.Image(label="Result (click two corners of a box: grabCut proposal for the object)",
                                type="numpy", format="png", interactive=False, elem_id="view", height=VIEW_HEIGHT,
                                value=app.view(0, []) if app.session else None)
                frame = gr.Slider(0, count - 1, value=0, step=1, label="Frame", elem_id="frame")
                with gr.Row():
                    play = gr.Button("Play", elem_id="play")
                    hide = gr.CheckboxGroup(label="Hide objects", choices=[], elem_id="hide")
        with gr.Row():
            forward = gr.Button("Propagate forward", elem_id="forward", variant="primary")
            backward = gr.Button("Propagate backward", elem_id="backward")
            cancel = gr.Button("Cancel", elem_id="cancel", variant="stop")
        with gr.Row():
            folder = gr.Textbox(app.export_folder(), label="Export folder", elem_id="folder")
            export = gr.Button("Export PNGs + overlay.mp4", elem_id="export")
            download = gr.File(label="Download (zip)", interactive=False, elem_id="download")
        with gr.Accordion("Video and model", open=app.session is None):
            upload = gr.File(label=f"Open a video file (up to {app.max_upload_mb} MB)", file_types=VIDEO_TYPES,
                             type="filepath", elem_id="upload")
            with gr.Row():
                model = gr.Textbox(app.model or "", label="Checkpoint", elem_id="model")
                load = gr.Button("Load model", elem_id="load")
        client_log = gr.Textbox(visible="hidden", elem_id="client_log")
        playing = gr.State(False)
        timer = gr.Timer(PLAY_INTERVAL, active=False)

        shown = [status, view, editor, hide, legend, header]
        frame.change(app.show, [frame, obj, hide], shown, trigger_mode="always_last")
        obj.change(app.show, [frame, obj, hide], shown, trigger_mode="always_last")
        hide.change(app.show_view, [frame, hide], [status, view])
        save.click(app.save, [editor, frame, obj, hide], shown)
        clear.click(app.clear, [frame, obj, hide], shown)
        view.select(app.click, [frame, obj, hide], shown)
        forward.click(app.forward, [editor, frame, obj, hide], shown)
        backward.click(app.backward, [editor, frame, obj, hide], shown)
        cancel.click(app.cancel, None, status)
        export.click(app.export, folder, [status, download])
        upload.upload(app.open_video, [upload, frame, obj, hide], [*shown, frame, folder])
        load.click(app.load_model, model, status)
        client_log.change(app.client_error, client_log, status)
        play.click(app.play, playing, [playing, timer, play])
        timer.tick(app.tick, [frame, playing], [frame, playing, timer, play])
    return page


def launch(app: DemoApp, host, port):
    """Serve the page (blocks until Ctrl-C): no share link, uploads limited, files served from the work folder only."""
    build(app).queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, share=False, inbrowser=False, show_error=True, js=CLIENT_JS,
        max_file_size=f"{app.max_upload_mb}mb", allowed_paths=[app.workdir], quiet=True)
