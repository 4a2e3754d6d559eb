"""Broken checkpoints given to the scripts (issue 12, items 7 and 11): a one-line
message naming the file, the documented exit code, and nothing written or removed."""
import hashlib
import os
import subprocess
import sys

import pytest
import torch

import train
from dataset.synthetic import make_davis_dataset
from model.checkpoint import CheckpointError, read_checkpoint
from model.network import IMSFR
from training.args import parse_train_args
from training.checkpoints import TRAINING_FIELDS, check_training_checkpoint, save_training_state
from training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--stage", "3", "--main_data", "davis", "--crop_size", "64", "--key_backbone", "resnet18",
         "--no_pretrained", "--num_workers", "0", "--batch_size", "1", "--device", "cpu",
         "--iterations", "2", "--steps", "1"]


def run_script(*argv):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def snapshot(folder):
    """{relative path: sha256 or 'dir'} of everything under ``folder``."""
    found = {}
    for base, dirs, files in os.walk(folder):
        for name in dirs:
            found[os.path.relpath(os.path.join(base, name), folder)] = "dir"
        for name in files:
            with open(os.path.join(base, name), "rb") as f:
                found[os.path.relpath(os.path.join(base, name), folder)] = hashlib.sha256(f.read()).hexdigest()
    return found


def only_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# ----------------------------------------------------------------------------- item 7: unreadable weights


def test_empty_checkpoint_exits_2_naming_the_file(tmp_path):
    davis = tmp_path / "davis"
    make_davis_dataset(davis / "trainval", num_sequences=1, num_frames=2, size=(32, 48), splits=("val",))
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    before = snapshot(tmp_path)
    result = run_script("eval_davis.py", "--model", str(empty), "--davis_path", str(davis),
                        "--output", str(tmp_path / "out"), "--device", "cpu")
    assert result.returncode == 2, result.stderr
    line = only_line(result.stderr)
    assert line.startswith("error: ") and f"{empty}: checkpoint file is empty (0 bytes" in line
    assert snapshot(tmp_path) == before  # no output folder, the inputs untouched


@pytest.mark.parametrize("content, expected", [
    (b"", "checkpoint file is empty (0 bytes"),
    ("half", "not a readable PyTorch checkpoint (RuntimeError: "),
    (b"hello world", "not a readable PyTorch checkpoint (KeyError: "),
    ("folder", "is a folder, not a checkpoint file"),
])
def test_unreadable_checkpoints_give_one_line_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "net.pth"
    if content == "folder":
        path.mkdir()
    elif content == "half":
        torch.save({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:2000])
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError) as error:
        read_checkpoint(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


# ----------------------------------------------------------------------------- item 11: resume checkpoints


@pytest.fixture(scope="module")
def resume_run(tmp_path_factory):
    """A full checkpoint written by the trainer's own saver (no training needed: resuming
    reads the checkpoint before the data), with the argv of its run."""
    base = tmp_path_factory.mktemp("resume")
    argv = [*SMALL, "--davis_root", str(base / "davis"), "--id", "r", "--save_dir", str(base / "saves"),
            "--log_dir", str(base / "runs")]
    args = parse_train_args(argv)
    args.world_size = 1  # as run_training sets it
    network = IMSFR(single_object=False, pretrained=False, key_backbone="resnet18")
    _, checkpoint = save_training_state(Trainer(network, "cpu", args.lr, args.steps), args, 2, 0, 2, 4)
    return argv, read_checkpoint(checkpoint)


def without(state, field):
    state = dict(state)
    head, _, rest = field.partition(".")
    if rest:
        state[head] = without(state[head], rest)
    else:
        del state[head]
    return state


def broken_copy(resume_run, tmp_path, field):
    """(argv writing into ``tmp_path``, the checkpoint without ``field``, a snapshot of ``tmp_path``)."""
    argv, state = resume_run
    broken = tmp_path / "broken_checkpoint.pth"
    torch.save(without(state, field), broken)
    argv = list(argv)
    argv[argv.index("--save_dir") + 1] = str(tmp_path / "saves")
    argv[argv.index("--log_dir") + 1] = str(tmp_path / "runs")
    return [*argv, "--load_model", str(broken)], broken, snapshot(tmp_path)


def files_of(tree):
    return {path: digest for path, digest in tree.items() if digest != "dir"}


def test_resume_checkpoint_without_rng_names_the_field(resume_run, tmp_path):
    argv, broken, before = broken_copy(resume_run, tmp_path, "rng")
    result = run_script("train.py", *argv)
    assert result.returncode == 1, result.stderr
    line = only_line(result.stderr)
    assert line.startswith(f"error: {broken}: training checkpoint has no 'rng' field"), line
    assert files_of(snapshot(tmp_path)) == files_of(before)  # nothing written, the checkpoint kept


@pytest.mark.parametrize("field", ["args", "optimizer", "rng.numpy.keys"])
def test_resume_checkpoint_missing_a_field_names_it(resume_run, tmp_path, capsys, field):
    argv, broken, before = broken_copy(resume_run, tmp_path, field)
    assert train.main(argv) == 1
    line = only_line(capsys.readouterr().err)
    assert line.startswith(f"error: {broken}: training checkpoint has no '{field}' field"), line
    assert files_of(snapshot(tmp_path)) == files_of(before)


def test_every_resume_field_is_checked(resume_run):
    _, state = resume_run
    check_training_checkpoint(state, "ok.pth")  # the real checkpoint passes
    for field in TRAINING_FIELDS:
        with pytest.raises(CheckpointError, match=rf"^x\.pth: training checkpoint has no '{field}' field"):
            check_training_checkpoint(without(state, field), "x.pth")
    wrong = {**state, "iteration": "3"}
    with pytest.raises(CheckpointError, match=r"^x\.pth: training checkpoint field 'iteration' is a str, expected int"):
        check_training_checkpoint(wrong, "x.pth")
