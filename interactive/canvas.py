"""The annotation canvas: one image on which the brush, the eraser, clicks and boxes act, at the working
size, with a frame slider and strip, the objects (colour, visibility) and undo/redo.

It is a ``gr.HTML`` whose script (interactive/canvas.js) calls the app's Python functions directly
(``server_functions``: view, edit, undo, redo; they answer JSON with the frame as a JPEG and the masks
as a PNG data URL, so nothing is written to Gradio's cache) and whose ``value`` carries JSON both ways:
from the page's handlers, commands (``command()``: a new session, go to a frame, refresh); to them,
what the canvas shows (session, frame, object), which the buttons read.
"""
import base64
import itertools
import json
import os

import cv2
import gradio as gr
import numpy as np

from util.palette import DAVIS_PALETTE

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "canvas.js")
JPEG_QUALITY = 90
_nonce = itertools.count(1)

TEMPLATE = """
<div class="imsfr-canvas" tabindex="0">
  <div class="imsfr-toolbar">
    <button type="button" class="imsfr-tool" data-tool="brush" title="brush (B)">Brush</button>
    <button type="button" class="imsfr-tool" data-tool="eraser" title="eraser (E)">Eraser</button>
    <button type="button" class="imsfr-tool" data-tool="click"
            title="click to mask (C): left click adds, right or shift click removes">Click</button>
    <button type="button" class="imsfr-tool" data-tool="box" title="box (X): drag, or click two corners">Box</button>
    <label title="brush size ([ and ])">size <input type="range" class="imsfr-radius" min="1" max="64" value="4"></label>
    <button type="button" class="imsfr-undo" title="undo (Ctrl+Z)">Undo</button>
    <button type="button" class="imsfr-redo" title="redo (Ctrl+Y)">Redo</button>
    <button type="button" class="imsfr-reload" title="reload this frame from the server (R)">Reload</button>
  </div>
  <div class="imsfr-objects"></div>
  <canvas class="imsfr-view"></canvas>
  <div class="imsfr-frames">
    <button type="button" class="imsfr-prev" title="previous frame (left arrow, A)">&#9664;</button>
    <input type="range" class="imsfr-slider" min="0" max="0" value="0" step="1">
    <button type="button" class="imsfr-next" title="next frame (right arrow, D)">&#9654;</button>
    <span class="imsfr-frame"></span>
  </div>
  <canvas class="imsfr-strip" title="frames: annotated (colour), propagated (grey); click to go there"></canvas>
  <div class="imsfr-notice"></div>
  <div class="imsfr-status" data-kind="info"></div>
</div>
"""

CSS = """
.imsfr-canvas { display: flex; flex-direction: column; gap: 6px; outline: none; }
.imsfr-toolbar, .imsfr-frames, .imsfr-objects { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.imsfr-canvas button { padding: 2px 10px; border: 1px solid #d1d5db; border-radius: 6px; background: #f9fafb; }
.imsfr-tool.selected, .imsfr-object.selected .pick { background: #1f2937; color: white; }
.imsfr-view { width: 100%; image-rendering: pixelated; touch-action: none; cursor: crosshair; background: #111; }
.imsfr-slider { flex: 1; }
.imsfr-strip { width: 100%; height: 14px; cursor: pointer; }
.imsfr-object { display: inline-flex; gap: 3px; align-items: center; }
.imsfr-object input[type=color] { width: 22px; height: 22px; padding: 0; border: none; }
.imsfr-status[data-kind=error], .imsfr-status[data-kind=stale], .imsfr-notice { color: #b91c1c; }
.imsfr-status[data-kind=saved] { color: #166534; }
"""


def script():
    palette = list(np.frombuffer(DAVIS_PALETTE, np.uint8).tolist())
    with open(SCRIPT, encoding="utf-8") as f:
        return f"const PALETTE = {json.dumps(palette)};\n" + f.read()


def build(functions, value):
    """The canvas component; ``functions``: the Python functions the script calls (plain functions)."""
    return gr.HTML(value=value, html_template=TEMPLATE, css_template=CSS, js_on_load=script(),
                   server_functions=list(functions), elem_id="canvas", apply_default_css=False)


def command(session, **fields):
    """A command for the canvas (a JSON string with a new nonce): ``session`` (an interactive Session or None)
    and e.g. frame=, goto=True, refresh=True, info=, message=, kind=."""
    head = {"session": None, "frames": 1, "width": 1, "height": 1} if session is None else {
        "session": session.id, "frames": len(session), "width": session.size[1], "height": session.size[0]}
    return json.dumps({"nonce": next(_nonce), **head, **fields})


def read(value):
    """What the canvas reported (its ``value``): a dict with session, frame, object, ... (empty if none)."""
    try:
        state = json.loads(value or "{}")
    except (TypeError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def jpeg_url(image):
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    assert ok
    return "data:image/jpeg;base64," + base64.b64encode(data.tobytes()).decode()


def labels_url(labels):
    """A label map as a grayscale PNG (the script reads the ids from its red channel)."""
    ok, data = cv2.imencode(".png", np.ascontiguousarray(labels, np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    assert ok
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode()


def ranges(frames):
    """Sorted frame indices as [first, last] runs."""
    runs = []
    for t in frames:
        if runs and runs[-1][1] == t - 1:
            runs[-1][1] = t
        else:
            runs.append([t, t])
    return runs
