"""train.py on tiny synthetic data (CPU, ResNet-18 key encoder, 64 px crops):
DDP under both launchers, exact resume, stage-0 -> stage-3 weights, bad input."""
import os
import re
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import train
from model.checkpoint import load_network_weights, read_checkpoint
from model.network import IMSFR
from tests.helpers_train import REPO, SMALL, free_port, run, stage3_args
from training.args import parse_train_args
from training.checkpoints import CHECKPOINT_FORMAT
from training.data import build_training_data, epoch_loader
from training.logger import prediction_grid
from training.trainer import weights_checksum
from util.distributed import DistContext


def load_weights(path):
    """A fresh multi-object network with the weights of ``path`` (raises if they do not fit)."""
    network = IMSFR(single_object=False, pretrained=False, key_backbone="resnet18")
    load_network_weights(network, path)
    return network


@pytest.mark.parametrize("launcher", ["torch.distributed.run", "torch.distributed.launch"])
def test_two_process_gloo_run_ends_with_identical_weights(launcher, davis_root, tmp_path):
    command = [sys.executable, "-m", launcher, "--nproc_per_node=2", f"--master_port={free_port()}",
               "train.py", *stage3_args(davis_root, tmp_path, "ddp", "--iterations", "2", "--image_every", "2")]
    result = run(command)
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"weights checksum per rank: (\w+) (\w+) \(identical\)", result.stdout)
    assert match, result.stdout
    assert match.group(1) == match.group(2)
    # Only rank 0 logs.
    assert result.stdout.count("weights checksum per rank") == 1
    # The saved weights are the ranks' weights and load into a fresh network.
    network = load_weights(tmp_path / "saves" / "ddp_2.pth")
    assert weights_checksum(network).startswith(match.group(1))
    checkpoint = read_checkpoint(tmp_path / "saves" / "ddp_checkpoint.pth")
    assert checkpoint["format"] == CHECKPOINT_FORMAT
    assert (checkpoint["iteration"], checkpoint["epoch"], checkpoint["batches_done"]) == (2, 0, 2)
    assert checkpoint["args"]["world_size"] == 2
    events = EventAccumulator(str(tmp_path / "runs" / "ddp"))
    events.Reload()
    tags = events.Tags()
    for name in ("total_loss", "ce_loss_1", "ce_loss_2", "iou_1", "iou_2", "lr", "p", "sec_per_iter"):
        assert [e.step for e in events.Scalars(f"train/{name}")] == [1, 2]
    assert tags["images"] == ["train/prediction"]
    assert {"hyperparameters/text_summary", "git_commit/text_summary"} <= set(tags["tensors"])


def test_ranks_read_disjoint_shards_and_skip_consumed_batches(davis_root, tmp_path):
    args = parse_train_args(stage3_args(davis_root, tmp_path, "shards", "--iterations", "4"))
    cpu = torch.device("cpu")
    ranks = [build_training_data(args, DistContext(rank, 0, 2, cpu)) for rank in (0, 1)]
    assert [r.batches_per_epoch for r in ranks] == [2, 2]

    def indices(data, epoch, skip):
        return [i for batch in epoch_loader(data, epoch, skip, args, cpu).batch_sampler for i in batch]

    shards = [indices(r, 0, 0) for r in ranks]
    assert sorted(shards[0] + shards[1]) == [0, 1, 2, 3]
    assert indices(ranks[0], 0, 1) == shards[0][1:]
    indices(ranks[0], 3, 0)
    assert ranks[0].dataset.epoch == 3  # set_epoch reaches the datasets (their augmentations)


def test_resume_matches_uninterrupted_run(davis_root, tmp_path, capsys):
    # 4 samples, batch 1: 4 batches per epoch; stopping at 3 resumes mid-epoch and
    # the resumed run crosses into epoch 1.
    schedule = ["--iterations", "6", "--steps", "4", "--bootstrap_start", "2", "--bootstrap_end", "5"]
    assert train.main(stage3_args(davis_root, tmp_path, "part", *schedule, "--stop_after", "3")) == 0
    saves = tmp_path / "saves"
    first = read_checkpoint(saves / "part_checkpoint.pth")
    assert (first["iteration"], first["epoch"], first["batches_done"]) == (3, 0, 3)
    assert first["scheduler"]["last_epoch"] == 3
    assert "resume with --load_model" in capsys.readouterr().out

    # A different schedule cannot resume it.
    changed = stage3_args(davis_root, tmp_path, "part", "--iterations", "8", "--load_model",
                          str(saves / "part_checkpoint.pth"))
    assert train.main(changed) == 1
    assert "--iterations 6 (now 8)" in capsys.readouterr().err

    resumed = stage3_args(davis_root, tmp_path, "part", *schedule, "--load_model", str(saves / "part_checkpoint.pth"))
    assert train.main(resumed) == 0
    assert "resuming at iteration 3 (epoch 0, 3 batches into it)" in capsys.readouterr().out
    assert train.main(stage3_args(davis_root, tmp_path, "whole", *schedule)) == 0

    resumed_state = read_checkpoint(saves / "part_6.pth")
    whole_state = read_checkpoint(saves / "whole_6.pth")
    assert resumed_state.keys() == whole_state.keys()
    for name, tensor in whole_state.items():
        torch.testing.assert_close(resumed_state[name], tensor, rtol=1e-5, atol=1e-6, msg=name)
    end = read_checkpoint(saves / "part_checkpoint.pth")
    assert (end["iteration"], end["epoch"], end["batches_done"]) == (6, 1, 2)
    assert end["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-6)  # stepped at 4


def make_static_root(root, count=2):
    folder = root / "DUTS-TR"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (72, 88, 3), dtype=np.uint8)).save(folder / f"im{i}.jpg")
        mask = np.zeros((72, 88), np.uint8)
        mask[20:50, 25:60] = 255
        Image.fromarray(mask).save(folder / f"im{i}.png")
    return root


def test_stage0_weights_start_stage3(davis_root, tmp_path, capsys):
    static_root = make_static_root(tmp_path / "static")
    stage0 = ["--stage", "0", "--id", "s0", "--static_root", str(static_root), "--iterations", "1",
              "--save_dir", str(tmp_path / "saves"), "--log_dir", str(tmp_path / "runs"), *SMALL]
    assert train.main(stage0) == 0
    single = read_checkpoint(tmp_path / "saves" / "s0_1.pth")
    assert single["value_encoder.conv1.weight"].shape[1] == 4

    stage3 = stage3_args(davis_root, tmp_path, "s3", "--iterations", "1", "--load_network",
                         str(tmp_path / "saves" / "s0_1.pth"))
    assert train.main(stage3) == 0
    assert "upgraded single-object value encoder" in capsys.readouterr().out
    multi = read_checkpoint(tmp_path / "saves" / "s3_1.pth")
    assert multi["value_encoder.conv1.weight"].shape[1] == 5
    load_weights(tmp_path / "saves" / "s3_1.pth")


def test_missing_data_root_fails_cleanly(davis_root, tmp_path):
    args = stage3_args(davis_root, tmp_path, "bad", "--iterations", "1", "--davis_root", str(tmp_path / "nowhere"))
    result = run([sys.executable, "train.py", *args])
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: training data for stage 3 is not usable")
    assert f"DAVIS: {tmp_path / 'nowhere'}" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "saves").exists()


def test_stage_outside_0_to_3_is_refused(davis_root, tmp_path, capsys):
    args = stage3_args(davis_root, tmp_path, "bad", "--iterations", "1")
    args[1] = "5"
    with pytest.raises(SystemExit) as exit_info:
        train.main(args)
    assert exit_info.value.code == 2
    assert "argument --stage: invalid choice: 5" in capsys.readouterr().err


@pytest.mark.parametrize("content, expected", [
    ({"key_comp.weight": torch.zeros(3, 3)}, "does not fit this network; missing keys"),
    (b"not a checkpoint", "not a readable PyTorch checkpoint"),
])
def test_unusable_load_network_is_refused(content, expected, davis_root, tmp_path, capsys):
    path = tmp_path / "other.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    args = stage3_args(davis_root, tmp_path, "bad", "--iterations", "1", "--load_network", str(path))
    assert train.main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and expected in err
    assert not (tmp_path / "saves").exists()


def test_busy_master_port_is_reported(davis_root, tmp_path):
    # A manual multi-process launch (environment variables, no torchrun agent).
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        result = run([sys.executable, "train.py", *stage3_args(davis_root, tmp_path, "port", "--iterations", "1")], env)
    assert result.returncode == 1
    assert f"MASTER_PORT {port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_saves_a_checkpoint_and_exits(davis_root, tmp_path):
    args = stage3_args(davis_root, tmp_path, "term", "--iterations", "1000")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for line in process.stdout:
            if line.startswith("[train it 1]"):
                process.send_signal(signal.SIGTERM)
                break
        out = process.stdout.read()
        assert process.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        process.kill()
    iteration = int(re.search(r"stopped by SIGTERM after iteration (\d+);", out).group(1))
    checkpoint = read_checkpoint(tmp_path / "saves" / "term_checkpoint.pth")
    assert checkpoint["iteration"] == iteration >= 1
    load_weights(tmp_path / "saves" / f"term_{iteration}.pth")


def test_prediction_grid_puts_frames_truth_and_predictions_side_by_side():
    frames = torch.zeros(3, 3, 3, 16, 24)
    cls_gt = torch.zeros(3, 3, 16, 24, dtype=torch.long)
    cls_gt[:, :, :8] = 2
    masks = [torch.zeros(3, 2, 16, 24), torch.zeros(3, 2, 16, 24)]
    masks[1][:, 0] = 0.9
    grid = prediction_grid(frames, cls_gt, masks, max_samples=2)
    assert grid.shape == (3, 2 * 16, 8 * 24)
    # ImageNet mean colour for zero-normalised frames; palette colour 2 = (0, 128, 0) for the truth.
    torch.testing.assert_close(grid[:, 0, 0], torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(grid[:, 0, 3 * 24], torch.tensor([0.0, 128 / 255, 0.0]))
    torch.testing.assert_close(grid[:, 0, 6 * 24], torch.zeros(3))  # prediction 1: background
    torch.testing.assert_close(grid[:, 0, 7 * 24], torch.tensor([128 / 255, 0.0, 0.0]))  # object 1
