"""The interactive session without a browser: eval_generic.py's results from a first-frame mask,
corrections, backward propagation, grabCut boxes, the frame cache, cancel, export with the output
guard, and bad input. (Persistence, stale edits and undo: tests/test_interactive_store.py.)"""
import os
import zipfile

import numpy as np
import pytest

import eval_generic
from inference_core.data.frame_sources import VideoFileFrames
from interactive.frames import FrameCache
from interactive.session import Session, SessionError, load_core
from interactive.tools import grabcut_box
from tests.helpers_capture import progress_to_current_streams
from tests.helpers_interactive import j_and_f, write_clip
from util.output_guard import MANIFEST
from util.palette import load_annotation

FRAMES = 8
# The scripts and the session load the test weights through build_network: read them once for both.
pytestmark = pytest.mark.usefixtures("cached_network")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_clip(str(tmp_path_factory.mktemp("clip")), num_frames=FRAMES, size=(48, 64))


@pytest.fixture
def core(weights, cached_network):
    return load_core(weights, "cpu")


def new_session(core, clip, tmp_path):
    return Session(core, video=clip[0], workdir=str(tmp_path / "work"))


def test_first_frame_mask_gives_eval_generic_bytes(weights, core, clip, tmp_path, capsys):
    path, _, first = clip
    with progress_to_current_streams():
        assert eval_generic.main(["--model", weights, "--device", "cpu", "--video", path, "--masks", first,
                                  "--output", str(tmp_path / "eval")]) == 0
    capsys.readouterr()
    session = new_session(core, clip, tmp_path)
    session.set_mask(0, load_annotation(first))
    result = session.propagate(0)
    assert result.frames == list(range(FRAMES)) and not result.cancelled
    session.export(str(tmp_path / "session"))
    names = sorted(f for f in os.listdir(tmp_path / "eval" / "clip") if f != MANIFEST)
    assert names == [f"{t:05d}.png" for t in range(FRAMES)]
    for name in names:
        assert (tmp_path / "session" / name).read_bytes() == (tmp_path / "eval" / "clip" / name).read_bytes(), name


def test_correction_keeps_earlier_frames_and_changes_later_ones(core, clip, tmp_path):
    path, truth, first = clip
    session = new_session(core, clip, tmp_path)
    session.set_mask(0, load_annotation(first))
    session.propagate(0)
    before = [session.mask(t) for t in range(FRAMES)]
    t = 4
    painted = np.zeros(session.video_size, bool)
    painted[10:30, 20:50] = True
    session.paint(t, 1, painted)
    result = session.propagate(t)
    assert result.frames == list(range(t, FRAMES))
    after = [session.mask(u) for u in range(FRAMES)]
    for u in range(t):
        np.testing.assert_array_equal(after[u], before[u])
    np.testing.assert_array_equal(after[t] == 1, painted)
    assert any(not np.array_equal(after[u], before[u]) for u in range(t + 1, FRAMES))
    # Propagating again without a new correction gives the same frames (deterministic).
    session.propagate(t)
    for u in range(FRAMES):
        np.testing.assert_array_equal(session.mask(u), after[u])


def test_backward_reaches_most_of_forward(tracker_weights, tmp_path):
    path, truth, _ = write_clip(str(tmp_path), num_frames=16, size=(96, 160), seed=3)
    session = Session(load_core(tracker_weights, "cpu"), video=path, workdir=str(tmp_path / "work"))
    session.set_mask(0, truth[0])
    session.propagate(0)
    forward = j_and_f(truth, [session.mask(t) for t in range(16)])
    other = Session(session.core, video=path, workdir=str(tmp_path / "work"), new=True)
    other.set_mask(15, truth[15])
    result = other.propagate(15, "backward")
    assert result.frames == list(range(15, -1, -1))
    backward = j_and_f(truth, [other.mask(t) for t in range(16)])
    print(f"J&F forward {forward:.3f}, backward {backward:.3f}")
    assert forward >= 0.6  # the network tracks: the ratio means something
    assert backward >= 0.8 * forward


def test_grabcut_box_finds_a_synthetic_object(tmp_path):
    path, truth, _ = write_clip(str(tmp_path), num_frames=3, size=(96, 160), max_objects=1, seed=5)
    cache = FrameCache(VideoFileFrames(path), str(tmp_path / "cache"), (96, 160))
    ys, xs = np.nonzero(truth[0] == 1)
    box = (xs.min() - 3, ys.min() - 3, xs.max() + 3, ys.max() + 3)
    proposal = grabcut_box(cache.image(0), box)
    iou = (proposal & (truth[0] == 1)).sum() / (proposal | (truth[0] == 1)).sum()
    assert iou >= 0.8, iou


def test_frames_are_decoded_once_and_cached_at_the_working_size(clip, tmp_path):
    source = VideoFileFrames(clip[0])
    reads = []
    opened = source.reader

    def reader():
        inner = opened()
        original = inner.read
        inner.read = lambda t: reads.append(t) or original(t)
        return inner

    source.reader = reader
    cache = FrameCache(source, str(tmp_path / "cache"), (24, 32))
    assert cache.image(5).shape == (24, 32, 3)
    first = cache.image(2)
    cache.image(7)
    assert reads == list(range(8))                      # every frame once, in order
    assert sorted(os.listdir(tmp_path / "cache")) == [f"{t:06d}.png" for t in range(8)]
    np.testing.assert_array_equal(cache.image(2), first)  # from the cache, no decoding
    assert reads == list(range(8))


def test_cancel_stops_between_frames_and_keeps_what_was_written(core, clip, tmp_path):
    session = new_session(core, clip, tmp_path)
    session.set_mask(0, load_annotation(clip[2]))
    calls = []

    def progress(frame, done, total):
        calls.append((frame, done, total))
        if done == 3:
            session.cancel()

    result = session.propagate(0, progress=progress)
    assert result.cancelled and result.frames == [0, 1, 2]
    assert calls == [(0, 1, FRAMES), (1, 2, FRAMES), (2, 3, FRAMES)]
    assert session.mask(2).any() and not session.mask(5).any()
    assert not session.propagate(0).cancelled  # the next run is not cancelled


def test_bad_input_leaves_the_session_working(core, clip, tmp_path):
    session = new_session(core, clip, tmp_path)
    with pytest.raises(SessionError, match="no mask to propagate"):
        session.propagate(0)
    with pytest.raises(SessionError, match="expected the video's 64x48"):
        session.paint(0, 1, np.ones((10, 10), bool))
    with pytest.raises(SessionError, match="frame 8 does not exist"):
        session.paint(8, 1, np.ones((48, 64), bool))
    with pytest.raises(SessionError, match="object ids are 1..255"):
        session.paint(0, 256, np.ones((48, 64), bool))
    session.set_mask(0, load_annotation(clip[2]))
    # Unreadable, truncated and missing videos: a message naming the file, no session.
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(open(clip[0], "rb").read()[:2000])
    for path in (bad, truncated, tmp_path / "missing.mp4"):
        with pytest.raises(SessionError, match=str(path.name)):
            Session(core, video=str(path), workdir=str(tmp_path / "work"))
    with pytest.raises(ValueError, match="does not fit|not a|cannot"):
        broken = tmp_path / "broken.pth"
        broken.write_bytes(b"\0" * 100)
        load_core(str(broken), "cpu")
    assert session.propagate(0).frames == list(range(FRAMES))  # nothing annotated was lost
    assert session.annotated_frames() == [0]


def test_export_keeps_to_its_folder(core, clip, tmp_path):
    session = new_session(core, clip, tmp_path)
    session.set_mask(0, load_annotation(clip[2]))
    session.propagate(0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "00003.png").write_bytes(b"mine")
    with pytest.raises(SessionError, match="not written by this tool"):
        session.export(str(out))
    assert (out / "00003.png").read_bytes() == b"mine"
    with pytest.raises(SessionError, match="overlaps the input"):
        session.export(session.folder)
    (out / "00003.png").unlink()
    archive = session.export(str(out))
    assert sorted(os.listdir(out)) == sorted([MANIFEST, "overlay.mp4"] + [f"{t:05d}.png" for t in range(FRAMES)])
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == sorted(f"clip/{n}" for n in os.listdir(out) if n != MANIFEST)
    assert session.export(str(out)) == archive  # our own files are replaced
