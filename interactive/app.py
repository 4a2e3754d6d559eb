"""The interactive demo's web page (Gradio Blocks): a thin layer over ``interactive.session.Session``.

The server's session is the truth. Every page shows it as it is when the page loads (a load event),
and the page's own copy is only what it displays: the canvas (interactive/canvas.py) sends each
stroke, click and box when it is made, with the state of the frame it was drawn on, and the session
refuses it if the frame changed since. Propagation runs in a thread of its own; every open page polls
twice a second and shows the frame last written, the progress, and, when the run ends, the new masks.
One session at a time (a local, single-user app); all pages show that one. This is the only module
besides canvas.py that imports gradio.
"""
import dataclasses
import html
import logging
import os
import shutil
import tempfile
import threading
import time

import gradio as gr

from inference_core.data import SequenceError
from interactive import canvas
from interactive.frames import resize_labels
from interactive.session import Session, SessionError, StaleEdit, load_core
from interactive.store import SessionStore, video_digest
from model.checkpoint import CheckpointError

log = logging.getLogger("imsfr.interactive")
VIDEO_TYPES = [".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"]
POLL_INTERVAL = 0.5  # seconds between two looks of a page at the session (propagation progress, other tabs)
PLAY_INTERVAL = 0.2  # seconds per frame while playing the result
USER_ERRORS = (SessionError, SequenceError, CheckpointError, ValueError, OSError)
QUIET = dict(show_progress="hidden")  # one progress line (#progress), nothing drawn over the images


@dataclasses.dataclass
class Run:
    """A propagation running (or run) in its thread."""
    number: int
    session: str
    direction: str
    start: int
    total: int
    started: float = dataclasses.field(default_factory=time.perf_counter)
    done: int = 0
    last: int = None          # the frame written last
    finished: float = None
    cancelled: bool = False
    error: str = None
    thread: threading.Thread = None

    def line(self):
        seconds = (self.finished or time.perf_counter()) - self.started
        if self.error:
            return f"**Error:** {self.error}"
        rate = f", {self.done / seconds:.1f} frames/s" if self.done and seconds > 0 else ""
        if self.finished is None:
            return (f"Propagating {self.direction} from frame {self.start}: {self.done}/{self.total} frames"
                    f"{rate} (Cancel or Esc stops after the frame in progress)")
        return (f"Propagated {self.direction} from frame {self.start}: {self.done} frames written"
                f"{' (cancelled)' if self.cancelled else ''} in {seconds:.1f} s{rate}.")


class DemoApp:
    """The app's state: the core, the session, the propagation thread and the settings (interactive_demo.py)."""

    def __init__(self, core, session=None, workdir=".", output=None, size=480, max_upload_mb=500, model=None,
                 device=None, memory_budget=None, speed=None):
        self.core, self.session = core, session
        self.workdir, self.size, self.max_upload_mb, self.output = workdir, size, max_upload_mb, output
        self.model, self.device, self.memory_budget, self.speed = model, device, memory_budget, speed or {}
        self.run, self.runs = None, 0
        self.lock = threading.Lock()  # opening a session, starting a run

    # ---- what every page shows ---------------------------------------------------------
    def export_folder(self):
        if self.output:
            return self.output
        return os.path.join(self.workdir, "export", self.session.name if self.session else "video")

    def header(self):
        s = self.session
        if s is None:
            return "No video: open one in 'Video, session and model' below."
        annotated = ", ".join(map(str, s.annotated_frames())) or "none"
        return (f"**{s.name}**: {len(s)} frames, {s.video_size[1]}x{s.video_size[0]} (working size "
                f"{s.size[1]}x{s.size[0]}); session `{s.id}` ({'resumed' if s.resumed else 'new'}); annotated "
                f"frames: {annotated}")

    def info(self):
        s = self.session
        return {"annotated": {str(t): sorted(objects) for t, (_, objects, _) in sorted(s.annotations.items())},
                "written": canvas.ranges(s.written_frames()), "objects": s.objects()}

    def sessions(self):
        choices = []
        for folder in SessionStore.sessions(self.workdir):
            name = os.path.basename(folder)
            stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(os.path.join(folder, "session.json"))))
            choices.append((f"{name} ({stamp})", folder))
        return gr.Dropdown(choices=choices, value=self.session.folder if self.session else None)

    def page(self, message=None, kind="info"):
        """Every output of a (re)load: canvas command, header, export folder, sessions, status, result."""
        s = self.session
        command = canvas.command(s, frame=s.shown, goto=True, info=self.info(), message=message, kind=kind) \
            if s else canvas.command(None, message=message or "open a video below")
        return command, self.header(), self.export_folder(), self.sessions(), message or "", self.result(s.shown) \
            if s else ""

    def load(self):
        return (*self.page(), {"version": self.session.version if self.session else -1, "run": None, "last": None})

    def result(self, t, caption=None):
        s = self.session
        url = canvas.jpeg_url(s.overlay(t))
        caption = html.escape(caption or f"frame {t}")
        return (f'<figure class="imsfr-result" data-frame="{t}"><img src="{url}" alt="frame {t}">'
                f"<figcaption>{caption}</figcaption></figure>")

    # ---- the canvas's calls (server functions: JSON in, JSON out) ---------------------------
    def checked(self, request):
        s = self.session
        if s is None:
            raise SessionError("no video: open one first")
        if not isinstance(request, dict) or request.get("session") != s.id:
            raise SessionError(f"this page shows another session than the demo's (another tab opened "
                               f"{s.name}, session {s.id}): reload the page; nothing was saved")
        return s

    def reply(self, s, result_frame, message=None, image=False):
        labels, state = s.snapshot(result_frame)
        out = {"ok": True, "frame": result_frame, "labels": canvas.labels_url(resize_labels(labels, s.size)),
               "state": state, "info": self.info(), "version": s.version, "message": message}
        if image:
            out["image"] = canvas.jpeg_url(s.frame(result_frame))
        return out

    def call(self, what, request):
        try:
            s = self.checked(request)
            if what == "view":
                t = int(request["frame"])
                s.show(t)
                return self.reply(s, t, image=True)
            if what in ("undo", "redo"):
                done = s.undo() if what == "undo" else s.redo()
                log.info("%s", done.message)
                return self.reply(s, done.frame, done.message, image=done.frame != request.get("frame"))
            t, k, state = int(request["frame"]), int(request["object"]), request.get("state")
            if not isinstance(state, str):
                raise StaleEdit(f"frame {t}: the page did not say which state it drew on: reload it; nothing was saved")
            tool = request.get("tool")
            if tool in ("brush", "eraser"):
                done = s.stroke(t, k, request["points"], float(request["radius"]), tool == "eraser", expect=state)
            elif tool == "click":
                done = s.click(t, k, [(float(x), float(y), bool(p)) for x, y, p in request["clicks"]], expect=state)
            elif tool == "box":
                done = s.box(t, k, [float(v) for v in request["box"]], expect=state)
            else:
                raise SessionError(f"unknown tool {tool!r}")
            log.info("%s", done.message)
            return self.reply(s, t, done.message)
        except StaleEdit as error:
            log.warning("%s", error)
            return {"ok": False, "stale": True, "message": str(error)}
        except USER_ERRORS as error:
            log.warning("%s", error)
            return {"ok": False, "message": str(error)}
        except (KeyError, TypeError) as error:
            return {"ok": False, "message": f"malformed request from the page ({error!r}): reload it"}

    def functions(self):
        """The canvas's server functions (plain functions: Gradio marks them)."""
        def view(request):
            return self.call("view", request)

        def edit(request):
            return self.call("edit", request)

        def undo(request):
            return self.call("undo", request)

        def redo(request):
            return self.call("redo", request)
        return view, edit, undo, redo

    # ---- propagating ---------------------------------------------------------------------
    def fail(self, error, outputs):
        message = str(error) or type(error).__name__
        log.warning("%s", message)
        gr.Warning(message)
        return (f"**Error:** {message}", *[gr.skip()] * outputs)

    def propagate(self, direction, value):
        """Start a propagation in its own thread from the canvas's frame; every page's poll shows it."""
        try:
            state = canvas.read(value)
            s = self.checked(state)
            if not isinstance(state.get("frame"), int):  # never guess the frame a propagation starts from
                raise SessionError("the page has not said which frame it shows yet: press Propagate again")
            t = state["frame"]
            with self.lock:
                if self.run is not None and self.run.finished is None:
                    raise SessionError(f"busy: a propagation is running ({self.run.done}/{self.run.total} frames; "
                                       "wait for it, or cancel it)")
                total = s.plan(t, direction)
                self.runs += 1
                run = Run(self.runs, s.id, direction, t, total)
                run.thread = threading.Thread(target=self.propagation, args=(s, run), daemon=True,
                                              name=f"propagation-{run.number}")
                self.run = run
                run.thread.start()
            log.info("propagation %d: %s from frame %d, %d frames", run.number, direction, t, total)
            return run.line()
        except USER_ERRORS as error:
            return self.fail(error, 0)[0]

    def propagation(self, session, run):
        def progress(frame, done, total):
            run.last, run.done, run.total = frame, done, total
        try:
            result = session.propagate(run.start, run.direction, progress=progress)
            run.cancelled = result.cancelled
        except USER_ERRORS as error:
            run.error = str(error)
        except Exception as error:  # noqa: BLE001 -- shown in the page and the log, the server keeps running
            log.exception("propagation failed")
            run.error = f"propagation failed: {error!r}"
        run.finished = time.perf_counter()
        log.info("%s", run.line())

    def cancel(self):
        if self.session is not None:
            self.session.cancel()
        return "Cancelling after the frame in progress..."

    def shutdown(self, timeout=None):
        """Stop a running propagation after its frame, and wait for it (Ctrl-C, SIGTERM)."""
        run = self.run
        if self.session is not None:
            self.session.cancel()
        if run is not None and run.thread is not None:
            run.thread.join(timeout)

    def poll(self, value, tab):
        """A page's look at the session: (canvas, result, progress, header, tab state). Shows the frame a
        running propagation wrote last, and once it ends, the new masks; edits made in another tab update
        the frame strip, and a notice appears if the frame this page shows was changed."""
        skip = gr.skip()
        s, run, state = self.session, self.run, canvas.read(value)
        if s is None:
            return skip, skip, skip, skip, tab
        if state.get("session") not in (None, s.id):
            tab = {"version": s.version, "run": None, "last": None}
            return (*self.page(f"Another tab opened {s.name} (session {s.id}): this page shows it now.")[:2], skip,
                    skip, tab)
        command = result = progress = header = skip
        if run is not None and run.session == s.id and run.number != tab.get("run"):
            progress = run.line()
            if run.last is not None and run.last != tab.get("last"):
                result = self.result(run.last, f"frame {run.last} ({run.done} of {run.total} written)")
                tab = {**tab, "last": run.last}
            if run.finished is not None:
                command = canvas.command(s, refresh=True, info=self.info())
                header = self.header()
                tab = {**tab, "run": run.number, "version": s.version}
        if s.version != tab.get("version") and command is skip:
            frame = state.get("frame")
            states = {str(frame): s.state(frame)} if isinstance(frame, int) and 0 <= frame < len(s) else {}
            command = canvas.command(s, info=self.info(), states=states)
            header = self.header()
            tab = {**tab, "version": s.version}
        return command, result, progress, header, tab

    # ---- playing the result ------------------------------------------------------------------
    def play(self, playing, value):
        start = canvas.read(value).get("frame", 0)
        return (not playing, start), gr.Timer(active=not playing), gr.Button("Pause" if not playing else "Play")

    def tick(self, playing):
        on, t = playing
        if self.session is None or not on or self.run is not None and self.run.finished is None:
            return gr.skip(), (False, t), gr.Timer(active=False), gr.Button("Play")
        if t >= len(self.session):
            return gr.skip(), (False, 0), gr.Timer(active=False), gr.Button("Play")
        return self.result(t, f"frame {t} (playing)"), (True, t + 1), gr.skip(), gr.skip()

    # ---- exporting, opening --------------------------------------------------------------------
    def export(self, value, folder):
        try:
            s = self.checked(canvas.read(value))
            folder = (folder or "").strip() or self.export_folder()
            path = s.export(folder)
            log.info("exported %s and %s", folder, path)
            return f"Exported {len(s)} palette PNGs and overlay.mp4 to {folder}; zip below.", path
        except USER_ERRORS as error:
            return self.fail(error, 1)

    def switch(self, make, message):
        """Open the session that ``make()`` returns instead of the current one (which stays on disk)."""
        with self.lock:
            if self.run is not None and self.run.finished is None:
                raise SessionError("busy: a propagation is running (wait for it, or cancel it)")
            session = make()
            if self.session is not None:
                self.session.close()
            self.session = session
        log.info("%s: %s (%d frames, folder %s)", message, session.input_path, len(session), session.folder)
        return self.page(f"{message} {session.name} ({len(session)} frames), session {session.id}"
                         f"{' resumed' if session.resumed else ''}.")

    def open_video(self, path):
        """An uploaded video: a copy under <workdir>/uploads/ (one per content), then its last session there."""
        try:
            if not path:
                raise SessionError("no file received")
            size = os.path.getsize(path)
            if size > self.max_upload_mb * 2**20:
                raise SessionError(f"{os.path.basename(path)}: {size / 2**20:.0f} MB is over the upload limit "
                                   f"of {self.max_upload_mb} MB (--max_upload_mb)")
            folder = os.path.join(self.workdir, "uploads", video_digest(path)[:16])
            target = os.path.join(folder, os.path.basename(path))
            if not os.path.isfile(target):
                os.makedirs(folder, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as part:
                    shutil.copyfileobj(open(path, "rb"), part)
                os.replace(part.name, target)
            try:
                return self.switch(lambda: Session(self.core, video=target, workdir=self.workdir, size=self.size),
                                   "Opened")
            except USER_ERRORS:
                if not SessionStore.find_last(self.workdir, os.path.splitext(os.path.basename(target))[0],
                                              video_digest(target)):
                    shutil.rmtree(folder, ignore_errors=True)  # keep no unusable upload
                raise
        except USER_ERRORS as error:
            return self.failed(error)

    def failed(self, error):
        """The outputs of ``page`` for an action that failed: only the status changes."""
        status = self.fail(error, 0)[0]
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), status, gr.skip()

    def open_session(self, folder):
        if not folder or (self.session is not None and folder == self.session.folder):
            return (gr.skip(),) * 6
        try:
            manifest = SessionStore.open(folder).manifest
            video = manifest["video"]
            kind = {"images": video} if os.path.isdir(video) else {"video": video}
            return self.switch(lambda: Session(self.core, workdir=self.workdir, size=self.size, folder=folder, **kind),
                               "Opened the earlier session of")
        except USER_ERRORS as error:
            return self.failed(error)

    def new_session(self):
        try:
            if self.session is None:
                raise SessionError("no video: open one first")
            s = self.session
            kind = {"images": s.input_path} if os.path.isdir(s.input_path) else {"video": s.input_path}
            return self.switch(lambda: Session(self.core, workdir=self.workdir, size=self.size, new=True, **kind),
                               "A new session of")
        except USER_ERRORS as error:
            return self.failed(error)

    def client_error(self, text):
        """A message the browser showed without asking the server (an upload over the size limit)."""
        message = " ".join((text or "").partition("|")[2].split()).removeprefix("Error ")
        if not message:
            return gr.skip()
        log.warning("browser: %s (--max_upload_mb %d)", message, self.max_upload_mb)
        return f"**Error:** {message} (the limit is --max_upload_mb {self.max_upload_mb})"

    def load_model(self, path):
        try:
            core = load_core(path.strip(), self.device, self.memory_budget, **self.speed)
            if self.session is not None:
                self.session.set_core(core)
        except (CheckpointError, ValueError, RuntimeError, OSError) as error:
            return self.fail(error, 0)[0]
        self.core = core
        log.info("model %s loaded", path)
        return f"Model {path} loaded; the annotations are kept (propagate again to use it)."
