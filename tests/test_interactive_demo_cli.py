"""interactive_demo.py's start-up: one line and exit code 2 for a port in use, a checkpoint that does not
fit, an unreadable video, a folder whose first frame is a truncated JPEG, or a damaged session folder;
a warning for a non-local --host. (The page itself: tests/test_interactive_browser.py.)"""
import json
import os
import socket

import pytest

import interactive_demo
from interactive.session import Session, load_core
from tests.helpers_interactive import write_clip

pytestmark = pytest.mark.usefixtures("cached_network")


def one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_port_in_use_is_one_line_and_exit_2(weights, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert interactive_demo.main(["--model", weights, "--port", str(port)]) == 2
    assert one_error_line(capsys) == \
        f"error: port {port} on 127.0.0.1 is in use (another demo?); choose another with --port"


@pytest.mark.parametrize("what", ["checkpoint", "video"])
def test_bad_checkpoint_or_video_is_one_line_and_exit_2(what, weights, tmp_path, capsys):
    junk = tmp_path / ("junk.pth" if what == "checkpoint" else "junk.mp4")
    junk.write_bytes(b"\0" * 64)
    model = str(junk) if what == "checkpoint" else weights
    argv = ["--model", model, "--port", "0", "--workdir", str(tmp_path / "work"), "--device", "cpu"]
    if what == "video":
        argv += ["--video", str(junk)]
    assert interactive_demo.main(argv) == 2
    assert str(junk) in one_error_line(capsys)


def test_a_truncated_first_frame_is_one_line_and_exit_2(weights, tmp_path, capsys):
    _, _, _ = write_clip(str(tmp_path), num_frames=3, size=(48, 64))
    frames = tmp_path / "clip_data" / "JPEGImages" / "480p"
    folder = next(frames.iterdir())
    first = folder / "00000.jpg"
    first.write_bytes(first.read_bytes()[:400])
    argv = ["--model", weights, "--port", "0", "--workdir", str(tmp_path / "work"), "--device", "cpu",
            "--frames", str(folder)]
    assert interactive_demo.main(argv) == 2
    assert str(first) in one_error_line(capsys)


def test_a_damaged_session_folder_is_one_line_and_exit_2(weights, tmp_path, capsys):
    path = write_clip(str(tmp_path), num_frames=3, size=(48, 64))[0]
    work = str(tmp_path / "work")
    session = Session(load_core(weights, "cpu"), video=path, workdir=work)
    manifest = os.path.join(session.folder, "session.json")
    data = json.load(open(manifest))
    data["frames"] = "3"
    open(manifest, "w").write(json.dumps(data))
    before = open(manifest).read()
    argv = ["--model", weights, "--port", "0", "--workdir", work, "--device", "cpu", "--video", path]
    assert interactive_demo.main(argv) == 2
    line = one_error_line(capsys)
    assert manifest in line and "--new" in line and open(manifest).read() == before


def test_non_local_host_warns(weights, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(interactive_demo, "port_is_free", lambda port, host: False)  # stop before serving
    assert interactive_demo.main(["--model", weights, "--host", "0.0.0.0"]) == 2
    assert "listening on 0.0.0.0: anyone who can reach this machine" in caplog.text


def test_flags():
    assert interactive_demo.parse_args(["--model", "m"]).memory_budget == 50
    assert interactive_demo.parse_args(["--model", "m", "--memory_budget", "none"]).memory_budget is None
    assert interactive_demo.parse_args(["--model", "m", "--images", "f"]).frames == "f"  # the older name
    assert interactive_demo.parse_args(["--model", "m"]).workdir == "demo_work"
    with pytest.raises(SystemExit):
        interactive_demo.parse_args(["--model", "m", "--memory_budget", "0"])


def test_video_and_frames_exclude_each_other(tmp_path):
    path = write_clip(str(tmp_path), num_frames=3, size=(48, 64))[0]
    with pytest.raises(SystemExit):
        interactive_demo.parse_args(["--model", "m", "--video", path, "--frames", str(tmp_path)])
