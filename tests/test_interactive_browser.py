"""The interactive demo in a real browser (headless Chromium, tests/helpers_browser.py) on a synthetic mp4
with a briefly trained network: a reload keeps the annotations and the propagation uses them; the page
shows the frames as they are written; an edit from a page that saw an older state is refused; a stroke
is saved however the page is left; click to mask with undo and redo; the whole flow (box, brush,
propagate, correct, export, the downloaded zip's J&F, the overlay colours); bad and one-frame uploads,
and a second tab told when the first opens another video. IMSFR_SAVE_SCREENSHOT=1 writes the page's
screenshot to docs/interactive_demo.png."""
import io
import os
import signal
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from interactive.app import POLL_INTERVAL
from interactive.tools import next_click
from tests.helpers_browser import REPO, Demo, Page, browser, manifest
from tests.helpers_interactive import j_and_f, write_clip
from util.palette import DAVIS_PALETTE, load_annotation

pytestmark = pytest.mark.slow
FRAMES, SIZE = 40, (96, 160)
SHORT = 12  # frames of the export test's video
CORRECTED = 8


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path, truth, _ = write_clip(str(tmp_path_factory.mktemp("clip")), num_frames=FRAMES, size=SIZE, seed=7)
    return path, truth


@pytest.fixture(scope="module")
def demo(tracker_weights, clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    running = Demo(str(folder), tracker_weights, "--video", clip[0], "--workdir", str(folder / "work"),
                   "--max_upload_mb", "2")
    running.workdir = str(folder / "work")
    yield running
    assert running.stop(signal.SIGINT) == 0, running.output()      # Ctrl-C: exit code 0
    assert os.listdir(running.tmp) == [], os.listdir(running.tmp)  # nothing left in the temporary folder
    assert not os.path.exists(os.path.join(running.workdir, ".tmp"))


@pytest.fixture(scope="module")
def chrome():
    with browser() as instance:
        yield instance


def fresh(chrome, demo):
    """A page on a new session of the clip (the 'New session of this video' button)."""
    page = Page(chrome, demo, SIZE)
    before = page.session_id()
    if not page.js("() => !!document.querySelector('#new_session')"):
        page.page.click("text=Video, session and model")   # the accordion renders its content when opened
    page.page.click("#new_session")
    page.page.wait_for_function("(id) => { const h = document.querySelector('#header').innerText;"
                                " return h.includes('(new)') && !h.includes(id + ' '); }", arg=before,
                                timeout=60_000)
    page.wait_ready()
    return page


def folder_of(demo, page):
    return os.path.join(demo.workdir, "sessions", page.session_id())


def mask_file(demo, page, t):
    path = os.path.join(folder_of(demo, page), "masks", f"{t:06d}.png")
    return load_annotation(path) if os.path.isfile(path) else np.zeros(SIZE, np.uint8)


def bounding_box(mask, margin=3):
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    return (max(0, xs.min() - margin), max(0, ys.min() - margin), min(width - 1, xs.max() + margin),
            min(height - 1, ys.max() + margin))


def drag_box(page, box):
    x0, y0, x1, y1 = box
    page.tool("box")
    page.drag([(x0, y0), ((x0 + x1) / 2, (y0 + y1) / 2), (x1, y1)])


def fill_stroke(mask, step=3):
    """One zig-zag brush stroke over ``mask`` (inset by 2 pixels)."""
    inner = mask.copy()
    for axis in (0, 1):
        inner &= np.roll(mask, 2, axis) & np.roll(mask, -2, axis)
    points = []
    for y in range(0, mask.shape[0], step):
        xs = np.nonzero(inner[y])[0]
        if len(xs):
            ends = [(int(xs.min()), y), (int(xs.max()), y)]
            points += ends if len(points) % 4 == 0 else ends[::-1]
    return points


def watch_propagation(page, direction="forward", start=0):
    """Press Propagate; returns the result image's frames seen while it ran, and the final progress line."""
    before = page.text("#progress")                        # the last run's line, until this one's replaces it
    page.page.click(f"#{direction}")
    seen, deadline = [], time.monotonic() + 240
    while time.monotonic() < deadline:
        progress = page.text("#progress")
        frame = page.js("() => document.querySelector('#result figure')?.dataset.frame ?? null")
        if "Propagating" in progress and frame is not None and (not seen or seen[-1] != frame):
            seen.append(frame)
        if f"Propagated {direction} from frame {start}:" in progress and progress != before:
            return seen, progress
        time.sleep(0.1)
    log = page.demo.output()[-3000:]
    raise AssertionError(f"the propagation did not end: {page.text('#progress')!r}\nthe demo's log ends:\n{log}")


def iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_a_reload_keeps_the_annotation_and_the_page_shows_frames_as_they_are_written(chrome, demo, clip):
    truth = clip[1]
    page = fresh(chrome, demo)
    page.tool("brush")
    page.drag(fill_stroke(truth[0] == 1))                  # object 1 painted on frame 0
    page.saved("frame 0, object 1: +")
    page.reload()                                          # a new page: the state comes from the server
    assert "annotated frames: 0" in page.header()
    assert (mask_file(demo, page, 0) == 1).sum() > 0
    seen, final = watch_propagation(page)
    print(f"result image frames during the run: {seen}; {final}")
    assert len(seen) >= 3 and f"{FRAMES} frames written" in final
    present = [(mask_file(demo, page, t) == 1).any() for t in range(FRAMES)]
    assert present[0] and sum(present) >= 0.9 * FRAMES, present
    assert not page.errors, page.errors


def test_an_edit_from_a_page_that_saw_an_older_state_is_refused(chrome, demo, clip):
    truth = clip[1]
    a = fresh(chrome, demo)
    b = Page(chrome, demo, SIZE)                           # opened before A paints
    for page in (a, b):
        page.goto(5)
    ys, xs = np.nonzero(truth[5] == 1)
    a.tool("brush")
    a.drag([(xs.min() + 2, ys.mean()), (xs.max() - 2, ys.mean())])
    a.saved("frame 5, object 1: +")
    annotations = os.path.join(folder_of(demo, a), "annotations")
    files = {name: open(os.path.join(annotations, name), "rb").read() for name in os.listdir(annotations)}
    b.tool("brush")
    b.drag([(xs.mean(), ys.min() + 2), (xs.mean(), ys.max() - 2)])
    assert "frame 5 changed in another tab" in b.wait_text("#canvas .imsfr-status", "changed in another tab")
    time.sleep(1)
    assert {name: open(os.path.join(annotations, name), "rb").read() for name in os.listdir(annotations)} == files
    assert manifest(folder_of(demo, a))["annotations"] == {"5": {"objects": [1], "revision": 1}}


def test_a_stroke_is_saved_when_the_frame_or_object_changes_right_after_it(chrome, demo, clip):
    page = fresh(chrome, demo)
    page.tool("brush")
    page.drag([(20, 20), (40, 25)])
    page.page.keyboard.press("ArrowRight")                 # no other click: straight to frame 1
    page.wait_text("#canvas .imsfr-frame", "frame 1 /")
    page.wait_ready()                                      # frame 1 shows
    page.drag([(60, 40), (80, 45)])
    page.page.keyboard.press("2")                          # straight to object 2
    page.drag([(100, 60), (120, 62)])
    page.saved("frame 1, object 2: +")
    annotations = manifest(folder_of(demo, page))["annotations"]
    assert annotations == {"0": {"objects": [1], "revision": 1}, "1": {"objects": [1, 2], "revision": 2}}
    assert (mask_file(demo, page, 0) == 1).sum() > 50 and (mask_file(demo, page, 1) == 2).sum() > 50


def test_click_to_mask_with_undo_and_redo(chrome, demo, clip):
    truth = clip[1][0] == 2
    page = fresh(chrome, demo)
    page.page.keyboard.press("2")
    page.page.keyboard.press("c")
    predicted, clicks = np.zeros(SIZE, bool), 0
    while clicks < 3 and iou(predicted, truth) < 0.8:
        x, y, positive = next_click(truth, predicted)
        page.click(x, y, positive)
        clicks += 1
        page.saved("frame 0, object 2:")
        before, predicted = (predicted, mask_file(demo, page, 0) == 2)
    print(f"click to mask: IoU {iou(predicted, truth):.3f} after {clicks} clicks")
    assert iou(predicted, truth) >= 0.8
    page.page.keyboard.press("Control+z")
    page.saved("undid frame 0, object 2")
    np.testing.assert_array_equal(mask_file(demo, page, 0) == 2, before)
    page.page.keyboard.press("Control+y")
    page.saved("redid frame 0, object 2")
    np.testing.assert_array_equal(mask_file(demo, page, 0) == 2, predicted)


def test_annotate_propagate_correct_export(chrome, demo, tmp_path):
    # A 12-frame video opened in the page (an upload), the length the tracker was trained on: its J&F
    # measures the annotations, the correction and the export, not the tracker's drift over 40 frames.
    path, truth, _ = write_clip(str(tmp_path), num_frames=SHORT, size=SIZE, seed=7, name="short")
    page = fresh(chrome, demo)
    page.page.set_input_files("#upload input[type=file]", path)
    page.wait_text("#header", f"short: {SHORT} frames")
    page.wait_ready()
    drag_box(page, bounding_box(truth[0] == 1))             # object 1: a box, grabCut
    page.saved("frame 0, object 1: +")
    page.page.keyboard.press("2")
    page.tool("brush")
    page.drag(fill_stroke(truth[0] == 2))                   # object 2: a brush stroke
    page.saved("frame 0, object 2: +")
    watch_propagation(page)
    page.goto(CORRECTED)                                    # a correction, propagated again
    page.page.keyboard.press("1")
    drag_box(page, bounding_box(truth[CORRECTED] == 1))
    page.saved(f"frame {CORRECTED}, object 1: +")
    time.sleep(3 * POLL_INTERVAL)   # the polls bring the edit's new version to the canvas: its frame must hold
    watch_propagation(page, start=CORRECTED)
    page.page.click("#export")
    page.wait_text("#status", "Exported")
    with page.page.expect_download(timeout=240_000) as download:
        page.page.click("#download a")
    download.value.save_as(str(tmp_path / "download.zip"))
    view = page.page.locator("#canvas .imsfr-view")
    shown = np.asarray(Image.open(io.BytesIO(view.screenshot())).convert("RGB"), float)
    screenshot = page.page.screenshot(full_page=True)
    for k in (1, 2):
        page.page.locator(f"#canvas .imsfr-object[data-object='{k}'] input[type=checkbox]").click()
    page.page.wait_for_timeout(500)
    plain = np.asarray(Image.open(io.BytesIO(view.screenshot())).convert("RGB"), float)
    if os.environ.get("IMSFR_SAVE_SCREENSHOT") == "1":
        open(os.path.join(REPO, "docs", "interactive_demo.png"), "wb").write(screenshot)
    with zipfile.ZipFile(tmp_path / "download.zip") as archive:
        assert sorted(archive.namelist()) == sorted([f"short/{t:05d}.png" for t in range(SHORT)] + ["short/overlay.mp4"])
        masks = []
        for t in range(SHORT):
            with Image.open(io.BytesIO(archive.read(f"short/{t:05d}.png"))) as image:
                assert image.mode == "P" and bytes(image.getpalette()[:768]) == DAVIS_PALETTE
                masks.append(np.array(image))
    for t in range(SHORT):
        for k in (1, 2):
            assert ((masks[t] == k) & (truth[t] == k)).any(), (t, k)
    score = j_and_f(truth, masks)
    print(f"browser session J&F {score:.3f}")
    assert score >= 0.7
    # The overlay: (frame + colour) / 2 where an object is, so 2 * shown - plain is the colour.
    recovered = 2 * shown - plain
    for colour in np.frombuffer(DAVIS_PALETTE, np.uint8).reshape(-1, 3)[1:3].astype(float):
        assert (np.abs(recovered - colour).max(axis=-1) <= 24).sum() >= 200, colour
    assert not page.errors, page.errors


def test_bad_uploads_one_frame_video_and_a_second_tab(chrome, demo, tmp_path):
    junk, text = tmp_path / "junk.mp4", tmp_path / "notes.mp4"
    junk.write_bytes(os.urandom(3 * 2**20))
    text.write_text("not a video\n")
    one, _, _ = write_clip(str(tmp_path), num_frames=1, size=SIZE, seed=4, name="single")
    page = fresh(chrome, demo)
    other = Page(chrome, demo, SIZE)
    session = page.session_id()
    page.page.set_input_files("#upload input[type=file]", str(junk))
    assert "maximum allowed size" in page.wait_text("#status", "Error")
    page.page.set_input_files("#upload input[type=file]", str(text))
    assert "not a readable video" in page.wait_text("#status", "notes.mp4")
    assert page.session_id() == session                      # the session is unchanged
    page.page.set_input_files("#upload input[type=file]", str(one))
    page.wait_text("#header", "single: 1 frames")
    page.wait_ready()
    page.tool("brush")
    page.drag([(30, 30), (50, 40)])
    page.saved("frame 0, object 1: +")
    watch_propagation(page)
    assert "single" in other.wait_text("#canvas .imsfr-status", "Another tab opened")
    assert "single: 1 frames" in other.wait_text("#header", "single")
    printed = demo.output()
    assert "maximum allowed size" in printed and "notes.mp4: not a readable video" in printed
