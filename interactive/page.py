"""The demo's page layout and its events (Gradio Blocks) over a ``DemoApp`` (interactive/app.py)."""
import gradio as gr

from interactive import canvas
from interactive.app import POLL_INTERVAL, PLAY_INTERVAL, QUIET, VIDEO_TYPES, DemoApp

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

RESULT_CSS = """
figure { margin: 0; }
img { width: 100%; image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #4b5563; }
"""
HELP = ("**Keys**: left/right or A/D frame, 1-9 object, B brush, E eraser, C click (left adds, right or shift "
        "removes), X box, [ ] brush size, Ctrl+Z undo, Ctrl+Y redo, P propagate forward, Shift+P backward, "
        "Esc cancel, R reload the frame. Every stroke, click and box is saved when it is made.")


def build(app: DemoApp):
    """The page. Its components start empty: a load event fills them from the session as it is."""
    with gr.Blocks(title="IMSFR interactive segmentation") as page:
        gr.Markdown("## IMSFR interactive video object segmentation")
        header = gr.Markdown(elem_id="header")
        with gr.Row():
            with gr.Column(scale=3):
                editor = canvas.build(app.functions(), canvas.command(None))
            with gr.Column(scale=2):
                result = gr.HTML(elem_id="result", label="Result", css_template=RESULT_CSS, js_on_load=None)
                with gr.Row():
                    forward = gr.Button("Propagate forward (P)", elem_id="forward", variant="primary")
                    backward = gr.Button("Propagate backward", elem_id="backward")
                    cancel = gr.Button("Cancel (Esc)", elem_id="cancel", variant="stop")
                progress = gr.Markdown(elem_id="progress")
                play = gr.Button("Play", elem_id="play")
                status = gr.Markdown(elem_id="status")
                gr.Markdown(HELP)
        with gr.Row():
            folder = gr.Textbox(label="Export folder", elem_id="folder")
            export = gr.Button("Export PNGs + overlay.mp4", elem_id="export")
            download = gr.File(label="Download (zip)", interactive=False, elem_id="download")
        with gr.Accordion("Video, session and model", open=app.session is None):
            upload = gr.File(label=f"Open a video file (up to {app.max_upload_mb} MB)", file_types=VIDEO_TYPES,
                             type="filepath", elem_id="upload")
            with gr.Row():
                sessions = gr.Dropdown(label="Sessions in the work folder (open an earlier one)", elem_id="sessions",
                                       interactive=True)
                new = gr.Button("New session of this video", elem_id="new_session")
            with gr.Row():
                model = gr.Textbox(app.model or "", label="Checkpoint", elem_id="model")
                load = gr.Button("Load model", elem_id="load")
        client_log = gr.Textbox(visible="hidden", elem_id="client_log")
        tab = gr.State({"version": -1, "run": None, "last": None})
        playing = gr.State((False, 0))
        poll = gr.Timer(POLL_INTERVAL)
        player = gr.Timer(PLAY_INTERVAL, active=False)

        shown = [editor, header, folder, sessions, status, result]
        page.load(app.load, None, [*shown, tab], **QUIET)
        forward.click(lambda value: app.propagate("forward", value), editor, progress, concurrency_limit=None,
                      **QUIET)
        backward.click(lambda value: app.propagate("backward", value), editor, progress, concurrency_limit=None,
                       **QUIET)
        cancel.click(app.cancel, None, progress, concurrency_limit=None, **QUIET)
        poll.tick(app.poll, [editor, tab], [editor, result, progress, header, tab], concurrency_limit=None, **QUIET)
        export.click(app.export, [editor, folder], [status, download], **QUIET)
        # Emptied after each upload (opened or refused), so that the next video can be dropped straight away.
        upload.upload(app.open_video, upload, shown, **QUIET).then(lambda: None, None, upload, **QUIET)
        sessions.input(app.open_session, sessions, shown, **QUIET)
        new.click(app.new_session, None, shown, **QUIET)
        load.click(app.load_model, model, status, **QUIET)
        client_log.change(app.client_error, client_log, status, **QUIET)
        play.click(app.play, [playing, editor], [playing, player, play], **QUIET)
        player.tick(app.tick, playing, [result, playing, player, play], **QUIET)
    return page


def launch(app: DemoApp, host, port):
    """Serve the page in the background (returns the Blocks; ``close()`` stops it): no share link, uploads
    limited, files served from the work folder only."""
    page = build(app)
    page.queue(default_concurrency_limit=1).launch(
        server_name=host, server_port=port, share=False, inbrowser=False, show_error=True, js=CLIENT_JS,
        max_file_size=f"{app.max_upload_mb}mb", allowed_paths=[app.workdir], quiet=True, prevent_thread_lock=True)
    return page
