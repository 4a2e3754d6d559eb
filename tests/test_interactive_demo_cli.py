"""interactive_demo.py's start-up (issue 19, items 1 and 8): one line and exit code 2 for a port
in use, a checkpoint that does not fit or an unreadable video; a warning for a non-local --host.
(The page itself: tests/test_interactive_browser.py.)"""
import socket

import pytest

import interactive_demo
from tests.helpers_interactive import write_clip


def test_port_in_use_is_one_line_and_exit_2(weights, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert interactive_demo.main(["--model", weights, "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: port {port} on 127.0.0.1 is in use (another demo?); choose another with --port"]


@pytest.mark.parametrize("what", ["checkpoint", "video"])
def test_bad_checkpoint_or_video_is_one_line_and_exit_2(what, weights, tmp_path, capsys):
    junk = tmp_path / ("junk.pth" if what == "checkpoint" else "junk.mp4")
    junk.write_bytes(b"\0" * 64)
    model = str(junk) if what == "checkpoint" else weights
    argv = ["--model", model, "--port", "0", "--workdir", str(tmp_path / "work"), "--device", "cpu"]
    if what == "video":
        argv += ["--video", str(junk)]
    assert interactive_demo.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(junk) in err[0]


def test_non_local_host_warns(weights, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(interactive_demo, "port_free", lambda host, port: False)  # stop before serving
    assert interactive_demo.main(["--model", weights, "--host", "0.0.0.0"]) == 2
    assert "listening on 0.0.0.0: anyone who can reach this machine" in caplog.text


def test_budget_flag():
    assert interactive_demo.parse_args(["--model", "m"]).memory_budget == 50
    assert interactive_demo.parse_args(["--model", "m", "--memory_budget", "none"]).memory_budget is None
    with pytest.raises(SystemExit):
        interactive_demo.parse_args(["--model", "m", "--memory_budget", "0"])


def test_video_and_images_exclude_each_other(tmp_path):
    path = write_clip(str(tmp_path), num_frames=3, size=(32, 48))[0]
    with pytest.raises(SystemExit):
        interactive_demo.parse_args(["--model", "m", "--video", path, "--images", str(tmp_path)])
