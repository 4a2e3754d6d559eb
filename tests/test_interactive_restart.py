"""A demo killed (SIGKILL) in the middle of a propagation, started again on the same video and work folder:
the annotations and every mask written before the kill are there, byte for byte, and propagating on
completes the video; Ctrl-C during a propagation stops it after its frame with exit code 0, leaving
nothing in the system's temporary folder."""
import hashlib
import os
import signal
import time

import numpy as np
import pytest

from tests.helpers_browser import Demo, Page, browser
from tests.helpers_interactive import write_clip
from util.palette import load_annotation

pytestmark = pytest.mark.slow
FRAMES, SIZE = 60, (96, 160)


def files(folder):
    """{path: sha256} of the annotations and the masks of a session folder (not the temporary file of a
    write the kill interrupted: ``.<name>.<random>.tmp``, which the resumed session removes)."""
    found = {}
    for part in ("annotations", "masks"):
        for name in sorted(os.listdir(os.path.join(folder, part))):
            if name.startswith("."):
                continue
            found[f"{part}/{name}"] = hashlib.sha256(open(os.path.join(folder, part, name), "rb").read()).hexdigest()
    return found


def wait_for(condition, what, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_mid_propagation_then_resumed_and_completed(tracker_weights, tmp_path):
    path, truth, _ = write_clip(str(tmp_path), num_frames=FRAMES, size=SIZE, seed=11)
    work = str(tmp_path / "work")
    ys, xs = np.nonzero(truth[0] == 1)
    first = Demo(str(tmp_path), tracker_weights, "--video", path, "--workdir", work)
    with browser() as chrome:
        page = Page(chrome, first, SIZE)
        folder = os.path.join(work, "sessions", page.session_id())
        page.tool("box")
        page.drag([(xs.min() - 3, ys.min() - 3), (xs.mean(), ys.mean()), (xs.max() + 3, ys.max() + 3)])
        page.saved("frame 0, object 1: +")
        page.page.click("#forward")
        masks = os.path.join(folder, "masks")
        wait_for(lambda: len(os.listdir(masks)) >= 8, "8 frames written")
        first.process.kill()                               # SIGKILL in the middle of the propagation
        first.process.wait(timeout=60)
    kept = files(folder)
    written = sorted(int(name.split("/")[1][:6]) for name in kept if name.startswith("masks/"))
    print(f"killed after {len(written)} frames written")
    assert written == list(range(len(written))) and 8 <= len(written) < FRAMES
    assert [name for name in kept if name.startswith("annotations/")] == ["annotations/000000-r1.png"]

    second = Demo(str(tmp_path), tracker_weights, "--video", path, "--workdir", work)
    assert f"resumed session {folder}" in second.output()
    with browser() as chrome:
        page = Page(chrome, second, SIZE)
        assert "(resumed)" in page.header() and "annotated frames: 0" in page.header()
        assert files(folder) == kept                        # resuming changed nothing
        page.goto(len(written))                             # on from the first frame not written
        page.page.click("#forward")
        page.wait_text("#progress", f"Propagated forward from frame {len(written)}: {FRAMES - len(written)} frames")
        done = files(folder)
        assert {k: v for k, v in done.items() if k in kept} == kept  # the frames before stay as written
        assert len([k for k in done if k.startswith("masks/")]) == FRAMES
        present = [(load_annotation(os.path.join(folder, "masks", f"{t:06d}.png")) == 1).any() for t in range(FRAMES)]
        assert sum(present) >= 0.9 * FRAMES
        page.goto(FRAMES - 1)
        page.page.click("#backward")                        # Ctrl-C in the middle of a propagation
        page.wait_text("#progress", "Propagating backward")
        wait_for(lambda: "/" in page.text("#progress") and not page.text("#progress").split(": ")[1].startswith("0/"),
                 "a frame written backward")
        assert second.stop(signal.SIGINT, timeout=60) == 0, second.output()
    log = second.output()
    assert "stopping: a running propagation ends after its frame" in log and "Traceback" not in log, log
    for t in range(FRAMES):
        load_annotation(os.path.join(folder, "masks", f"{t:06d}.png"))  # every mask whole
    assert os.listdir(second.tmp) == []
    assert not os.path.exists(os.path.join(work, ".tmp"))
