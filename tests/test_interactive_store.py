"""The interactive session keeps the user's work: every edit on disk before it returns, resumed on the same
video and work folder, edits drawn on an older state refused with nothing written, undo and redo, edits
refused while a propagation runs, damaged or foreign session folders refused and left as they are."""
import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from interactive.brush import stroke_mask
from interactive.annotations import HISTORY
from interactive.session import Session, SessionError, StaleEdit, load_core
from interactive.store import MANIFEST
from tests.helpers_interactive import write_clip
from util.output_guard import MANIFEST as OUTPUTS
from util.palette import load_annotation

FRAMES = 6
pytestmark = pytest.mark.usefixtures("cached_network")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(str(tmp_path_factory.mktemp("clip")), num_frames=FRAMES, size=(48, 64))


@pytest.fixture
def core(weights, cached_network):
    return load_core(weights, "cpu")


def tree(folder):
    """{relative path: sha256} of every file under ``folder``."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return found


def square(y0, x0, side, size=(48, 64)):
    mask = np.zeros(size, bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def test_stroke_mask_covers_the_pixels_within_the_radius():
    # A horizontal stroke from (2, 3) to (8, 3), radius 1.5: pixel centres (j + 0.5, i + 0.5) within 1.5.
    mask = stroke_mask((6, 12), [(2, 3), (8, 3)], 1.5)
    expected = np.zeros((6, 12), bool)
    for i in range(6):
        for j in range(12):
            x, y = j + 0.5, i + 0.5
            s = min(max(x, 2), 8)
            expected[i, j] = (x - s) ** 2 + (y - 3) ** 2 <= 2.25
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 28  # rows 2 and 3: 8 pixels each; rows 1 and 4 (|dy| = 1.5): the 6 along the segment
    assert stroke_mask((6, 12), [(5, 3)], 1).sum() == 4   # a dot: the 4 centres around (5, 3)
    for bad in ([], [(1, 2, 3)], [(float("nan"), 1)]):
        with pytest.raises(ValueError):
            stroke_mask((6, 12), bad, 2)
    with pytest.raises(ValueError, match="radius"):
        stroke_mask((6, 12), [(1, 1)], 0)


def test_every_edit_is_on_disk_and_a_restart_resumes(core, clip, tmp_path):
    work = str(tmp_path / "work")
    session = Session(core, video=clip[0], workdir=work)
    assert not session.resumed
    session.paint(0, 1, square(5, 5, 10))
    session.stroke(0, 2, [(40, 20), (50, 20)], 3)
    session.paint(3, 2, square(20, 30, 8))
    session.clear(3, 2)                                     # frame 3: object 2 annotated absent no more
    session.paint(4, 1, np.zeros((48, 64), bool))           # object 1 annotated absent on frame 4
    session.show(2)
    manifest = json.load(open(os.path.join(session.folder, MANIFEST)))
    assert manifest["annotations"] == {"0": {"objects": [1, 2], "revision": 2},
                                       "4": {"objects": [1], "revision": 1}}
    assert manifest["frame"] == 2 and manifest["frames"] == FRAMES and manifest["video_size"] == [48, 64]
    assert sorted(os.listdir(os.path.join(session.folder, "annotations"))) == ["000000-r2.png", "000004-r1.png"]
    session.propagate(0)
    before = tree(session.folder)
    again = Session(core, video=clip[0], workdir=work)      # as a restarted demo does
    assert again.resumed and again.folder == session.folder and again.shown == 2
    assert again.annotated_frames() == [0, 4] and again.objects() == [1, 2]
    for t in range(FRAMES):
        np.testing.assert_array_equal(again.mask(t), session.mask(t))
        assert again.state(t) == session.state(t)
    assert {k: v for k, v in tree(again.folder).items() if not k.startswith("frames")} == \
        {k: v for k, v in before.items() if not k.startswith("frames")}
    fresh = Session(core, video=clip[0], workdir=work, new=True)
    assert not fresh.resumed and fresh.folder != session.folder and fresh.annotated_frames() == []
    assert Session(core, video=clip[0], workdir=work).folder == fresh.folder  # the last one is resumed
    assert Session(core, video=clip[0], workdir=work, folder=session.folder).annotated_frames() == [0, 4]


def test_an_edit_on_an_older_state_is_refused_and_writes_nothing(core, clip, tmp_path):
    session = Session(core, video=clip[0], workdir=str(tmp_path / "work"))
    seen = session.state(0)                                 # page B loads frame 0
    done = session.paint(0, 1, square(5, 5, 10), expect=seen)  # page A paints on the same state
    assert done.state == session.state(0) != seen
    files = tree(session.folder)
    with pytest.raises(StaleEdit, match="frame 0 changed in another tab"):
        session.stroke(0, 1, [(30, 30)], 4, expect=seen)     # page B draws on what it saw
    assert tree(session.folder) == files
    assert (session.mask(0) == 1).sum() == 100 and session.history() == (1, 0)
    session.stroke(0, 1, [(30, 30)], 4, expect=done.state)   # drawn on the current state: saved
    assert (session.mask(0) == 1).sum() > 100


def test_undo_and_redo_take_back_and_make_again_many_edits(core, clip, tmp_path):
    session = Session(core, video=clip[0], workdir=str(tmp_path / "work"))
    states = [[session.state(t) for t in range(FRAMES)]]
    masks = [[session.mask(t) for t in range(FRAMES)]]
    for i in range(25):
        t = i % 3
        session.stroke(t, 1 + i % 2, [(2 * i, 10), (2 * i + 5, 30)], 2)
        states.append([session.state(u) for u in range(FRAMES)])
        masks.append([session.mask(u) for u in range(FRAMES)])
    assert HISTORY >= 20 and session.history() == (25, 0)
    for i in range(25, 0, -1):
        done = session.undo()
        assert done.message.startswith("undid frame ")
        assert [session.state(u) for u in range(FRAMES)] == states[i - 1]
    for t in range(FRAMES):
        np.testing.assert_array_equal(session.mask(t), masks[0][t])
    assert session.annotated_frames() == [] and session.history() == (0, 25)
    with pytest.raises(SessionError, match="nothing to undo"):
        session.undo()
    for i in range(1, 26):
        session.redo()
        assert [session.state(u) for u in range(FRAMES)] == states[i]
    with pytest.raises(SessionError, match="nothing to redo"):
        session.redo()
    session.undo()
    session.paint(5, 1, square(0, 0, 4))                    # a new edit ends the redo history
    assert session.history() == (25, 0)
    resumed = Session(session.core, video=clip[0], workdir=str(tmp_path / "work"))
    for t in range(FRAMES):
        np.testing.assert_array_equal(resumed.mask(t), session.mask(t))


def test_edits_are_refused_while_a_propagation_runs(core, clip, tmp_path):
    session = Session(core, video=clip[0], workdir=str(tmp_path / "work"))
    session.set_mask(0, load_annotation(clip[2]))
    refused = []

    def progress(frame, done, total):
        if done == 2:
            for edit in (lambda: session.paint(4, 1, square(0, 0, 3)), session.undo,
                         lambda: session.propagate(0), lambda: session.export(str(tmp_path / "out"))):
                with pytest.raises(SessionError, match="busy: a propagation is running") as error:
                    edit()
                refused.append(str(error.value))

    assert session.propagate(0, progress=progress).frames == list(range(FRAMES))
    assert len(refused) == 4 and session.annotated_frames() == [0]
    session.paint(4, 1, square(0, 0, 3))                    # after the run: accepted


@pytest.mark.parametrize("damage", ["not json", "wrong type", "annotations string", "missing png",
                                    "truncated png", "stray object", "other video", "bad mask"])
def test_a_damaged_or_foreign_session_folder_is_refused_and_left_as_it_is(damage, core, clip, tmp_path):
    work = str(tmp_path / "work")
    session = Session(core, video=clip[0], workdir=work)
    session.paint(0, 1, square(5, 5, 10))
    session.propagate(0)
    manifest_path = os.path.join(session.folder, MANIFEST)
    annotation = os.path.join(session.folder, "annotations", "000000-r1.png")
    manifest = json.load(open(manifest_path))
    video = clip[0]
    if damage == "not json":
        open(manifest_path, "w").write('{"format": "imsfr-interactive-session", "vers')
        culprit = manifest_path
    elif damage in ("wrong type", "annotations string"):
        manifest["frames" if damage == "wrong type" else "annotations"] = "6" if damage == "wrong type" else "x.pth"
        open(manifest_path, "w").write(json.dumps(manifest))
        culprit = manifest_path
    elif damage == "missing png":
        os.remove(annotation)
        culprit = annotation
    elif damage == "truncated png":
        data = open(annotation, "rb").read()
        open(annotation, "wb").write(data[:len(data) // 2])
        culprit = annotation
    elif damage == "stray object":
        manifest["annotations"]["0"]["objects"] = [2]
        open(manifest_path, "w").write(json.dumps(manifest))
        culprit = annotation
    elif damage == "other video":
        video = write_clip(str(tmp_path / "other"), num_frames=FRAMES, size=(48, 64), seed=9)[0]
        culprit = manifest_path
    else:
        open(os.path.join(session.folder, "masks", "000003.png"), "wb").write(b"\x89PNG broken")
        culprit = os.path.join(session.folder, "masks", "000003.png")
    files = tree(session.folder)
    with pytest.raises(SessionError) as error:
        Session(core, video=video, workdir=work, folder=session.folder)
    message = str(error.value)
    assert culprit in message and "\n" not in message, message
    if damage != "other video":
        with pytest.raises(SessionError, match="left as it is|--new"):
            Session(core, video=video, workdir=work)        # resuming refuses it too
    assert tree(session.folder) == files                     # nothing written
    assert not Session(core, video=video, workdir=work, new=True).resumed  # --new starts afresh beside it


def test_what_an_interrupted_write_leaves_is_mended_on_opening(core, clip, tmp_path):
    work = str(tmp_path / "work")
    session = Session(core, video=clip[0], workdir=work)
    session.paint(0, 1, square(5, 5, 10))
    painted = session.mask(0)
    # Killed between the annotation's commit and its mask, with temporary files left behind:
    os.remove(session.store.mask_path(0))
    leftovers = [os.path.join(session.folder, "masks", ".000001.png.abc.tmp"),
                 os.path.join(session.folder, "annotations", "000000-r7.png")]
    for path in leftovers:
        shutil.copyfile(session.store.annotation_path(0, 1), path)
    again = Session(core, video=clip[0], workdir=work)
    np.testing.assert_array_equal(again.mask(0), painted)
    assert not any(os.path.exists(path) for path in leftovers)


def test_a_one_frame_video_is_annotated_propagated_and_exported(core, tmp_path):
    path = write_clip(str(tmp_path), num_frames=1, size=(48, 64), seed=2, name="single")[0]
    session = Session(core, video=path, workdir=str(tmp_path / "work"))
    assert len(session) == 1
    session.paint(0, 1, square(5, 5, 10))
    assert session.propagate(0).frames == [0] and session.propagate(0, "backward").frames == [0]
    assert (session.mask(0) == 1).sum() == 100
    session.export(str(tmp_path / "out"))
    assert sorted(os.listdir(tmp_path / "out")) == sorted([OUTPUTS, "00000.png", "overlay.mp4"])
