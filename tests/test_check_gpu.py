"""scripts/check_gpu.py without a GPU: its one line and exit code 0, and the parts that run on the
CPU as well (the lockstep comparison, the FPS of eval_davis.py, the table, torchrun training)."""
import os

import pytest
import torch

from scripts import check_gpu

pytestmark = pytest.mark.usefixtures("cached_network")


def test_without_cuda_one_line_and_exit_0(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_gpu.main(["--model", "does-not-matter.pth"]) == 0
    assert capsys.readouterr().out == check_gpu.NO_CUDA + "\n"


def test_lockstep_comparison(network, tmp_path):
    frames, given = check_gpu.synthetic_clip(str(tmp_path), frames=3, size=(48, 64), objects=2)
    assert len(frames) == 3 and frames[0].shape == (3, 48, 64) and given[0][1] == [1, 2]
    assert int(given[0][0].max()) == 2
    same = check_gpu.compare_cores(check_gpu.core(network, "cpu"), check_gpu.core(network, "cpu"), frames, given)
    assert same["label_agreement"] == 1.0 and same["max_dp"] == 0.0 and same["frames"] == 3
    reduced = check_gpu.compare_cores(check_gpu.core(network, "cpu"), check_gpu.core(network, "cpu", "bf16"),
                                      frames, given)
    assert reduced["max_dp"] > 0 and all(s > 0 for s in reduced["seconds"])
    assert "labels 100.000 % equal, max|dp| 0.00e+00 (3 frames)" == check_gpu.describe(same)


def test_fps_of_the_eval_script(weights, tmp_path):
    fps = check_gpu.eval_davis_fps(weights, str(tmp_path), "cpu", 1, 3, "fp32", size=(48, 64))
    assert fps > 0 and os.path.isfile(tmp_path / "fp32" / "seq_val_000" / "00002.png")
    assert check_gpu.fps_of("a: 3 frames\nProcessed 1 videos, 3 frames (3 through the network) in 1.5 s: "
                            "2.00 FPS (frames per second ...)\n") == 2.0
    with pytest.raises(ValueError, match="no FPS line"):
        check_gpu.fps_of("nothing")


def test_table_and_a_failing_check():
    rows = []
    assert check_gpu.check(rows, "fine", lambda: "ok")
    assert not check_gpu.check(rows, "broken", lambda: 1 / 0)
    assert check_gpu.check(rows, "many", lambda: [("a", "1"), ("b", "2")])
    assert check_gpu.format_table(rows).splitlines() == [
        "| check | result |", "|---|---|", "| fine | ok |", "| broken | FAILED: ZeroDivisionError: division by zero |",
        "| a | 1 |", "| b | 2 |"]


def test_onnx_row_without_a_cuda_provider(network, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    assert check_gpu.onnx_cuda(network, str(tmp_path), "cpu", [], {}).endswith("has no CUDA execution provider")


@pytest.mark.slow
def test_torchrun_training(tmp_path):
    """The torchrun row on this machine's device (the CPU here): train.py's iterations, its weights written."""
    message = check_gpu.torchrun_training(str(tmp_path), iterations=1)
    assert message.startswith("1 iterations in ") and os.path.isfile(tmp_path / "saves" / "gpucheck_1.pth")
