"""train.py under bad input found before or during training (issue 12, items 5, 6
and 12): unwritable output folders, unreadable training files, a busy
MASTER_PORT under the launchers. Real folders and real processes, on tiny
synthetic data (CPU, ResNet-18 key encoder, 64 px crops)."""
import os
import socket
import subprocess
import sys
import tempfile

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from dataset import DatasetError
from dataset.robust import MAX_BAD_FILES, DataFailure, SkipCounter, SkippingDataset, TooManyBadFiles, collate_skipping
from dataset.synthetic import make_davis_dataset
from model.checkpoint import read_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--no_subset", "--crop_size", "64", "--key_backbone", "resnet18", "--no_pretrained", "--batch_size", "1",
         "--log_every", "1", "--device", "cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def davis_root(tmp_path):
    """4 training videos of 3 frames: every sample of a video reads all its files."""
    root = tmp_path / "davis"
    make_davis_dataset(root, num_sequences=4, num_frames=3, size=(72, 96), max_objects=2, seed=0, splits=("train",))
    return root


def train_command(davis_root, tmp_path, *extra):
    return [sys.executable, "train.py", "--stage", "3", "--id", "run", "--main_data", "davis",
            "--davis_root", str(davis_root), "--save_dir", str(tmp_path / "saves"), "--log_dir",
            str(tmp_path / "runs"), *SMALL, *extra]


def run(command):
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)


def unwritable_for_root(folder):
    """True if creating a file in ``folder`` fails (for root too)."""
    try:
        fd, path = tempfile.mkstemp(dir=folder)
    except OSError:
        return True
    os.close(fd)
    os.remove(path)
    return False


# --------------------------------------------------------------------------- item 5: output folders
def test_save_dir_under_a_regular_file_stops_before_training(davis_root, tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    save_dir = tmp_path / "a_file" / "saves"
    command = train_command(davis_root, tmp_path, "--iterations", "1")
    command[command.index("--save_dir") + 1] = str(save_dir)
    result = run(command)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {save_dir}: cannot write in this folder (Not a directory)"]
    assert (tmp_path / "a_file").read_text() == "not a folder"
    assert not (tmp_path / "runs").exists()  # nothing written, not even the log folder
    assert "[train it" not in result.stdout


@pytest.mark.skipif(not (os.path.isdir("/proc") and unwritable_for_root("/proc")),
                    reason="needs /proc, where no file can be created")
def test_log_dir_where_writing_fails_stops_before_training(davis_root, tmp_path):
    # An existing folder in which creating a file fails, even for root.
    command = train_command(davis_root, tmp_path, "--iterations", "1")
    command[command.index("--log_dir") + 1] = "/proc"
    result = run(command)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == ["error: /proc: cannot write in this folder (No such file or directory)"]
    assert os.listdir(tmp_path / "saves") == []  # probed (and the probe removed), nothing saved
    assert "[train it" not in result.stdout


def test_a_checkpoint_that_cannot_be_written_is_named(davis_root, tmp_path, capsys):
    import train

    # The folder is writable (the probe passes) but the checkpoint's name is taken by a folder.
    blocker = tmp_path / "saves" / "run_checkpoint.pth"
    blocker.mkdir(parents=True)
    assert train.main(train_command(davis_root, tmp_path, "--iterations", "1", "--num_workers", "0")[2:]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == f"error: {blocker}: cannot write the checkpoint (Is a directory)"
    assert blocker.is_dir() and os.listdir(blocker) == []
    assert sorted(os.listdir(tmp_path / "saves")) == ["run_1.pth", "run_checkpoint.pth"]  # no temporary file left


# --------------------------------------------------------------------------- item 6: unreadable data
def test_an_rgb_annotation_is_skipped_with_a_warning_and_the_run_finishes(davis_root, tmp_path):
    bad = davis_root / "Annotations" / "480p" / "seq_train_001" / "00000.png"  # in every sample of the video
    Image.open(bad).convert("RGB").save(bad)
    # One epoch of 4 batches of 1 reads every video once; a data-loader worker reads them.
    result = run(train_command(davis_root, tmp_path, "--iterations", "4", "--num_workers", "1"))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: skipped a training sample: {bad}: annotation is a RGB image; expected a palette (indexed, "
        f"mode P) PNG whose pixel values are object ids (convert RGB colour masks to indices first) "
        f"(1 skipped so far, 1 different file(s))",
        f"warning: 1 unreadable sample(s) skipped in this run, from 1 different file(s): {bad}",
    ]
    assert "finished 4 iterations" in result.stdout
    checkpoint = read_checkpoint(tmp_path / "saves" / "run_checkpoint.pth")
    assert (checkpoint["iteration"], checkpoint["epoch"], checkpoint["batches_done"]) == (4, 0, 4)
    assert (tmp_path / "saves" / "run_4.pth").is_file()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_frames_truncated_during_a_two_process_run_stop_it_with_a_checkpoint(davis_root, tmp_path):
    # torchrun, 2 gloo ranks, one data-loader worker each; the frames are cut short mid-run.
    command = train_command(davis_root, tmp_path, "--iterations", "1000", "--num_workers", "1")
    command[1:2] = ["-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}", "train.py"]
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(command, cwd=REPO, env=ENV, text=True, stdout=subprocess.PIPE, stderr=stderr)
        try:
            for line in process.stdout:
                if line.startswith("[train it 2]"):
                    break
            # Every frame of every video is cut short: no sample can be read any more.
            for jpeg in sorted((davis_root / "JPEGImages" / "480p").rglob("*.jpg")):
                jpeg.write_bytes(jpeg.read_bytes()[:300])
            out = process.stdout.read()
            code = process.wait(timeout=240)
        finally:
            process.kill()
    err = (tmp_path / "stderr").read_text()
    assert code == 1, err
    saves = tmp_path / "saves"
    errors = sorted(line for line in err.splitlines() if "] error: " in line)
    assert [line[:len("[rank 0] error: ")] for line in errors] == ["[rank 0] error: ", "[rank 1] error: "], err
    iteration = int(errors[0].rsplit("stopped after iteration ", 1)[1].split(";")[0])
    assert iteration >= 2
    for line in errors:  # each rank names a file it could not read; both stopped at the same iteration
        message = line.split("] error: ", 1)[1]
        assert message.startswith(f"{davis_root / 'JPEGImages' / '480p'}{os.sep}"), line
        assert ".jpg: unreadable image (" in message
        assert "(no readable training sample in 4 consecutive tries)" in message
        assert message.endswith(f"; stopped after iteration {iteration}; resume with --load_model "
                                f"{saves / 'run_checkpoint.pth'}")
    # No traceback from this project's code (torchrun adds its own summary of the failed processes).
    assert f'File "{REPO}{os.sep}' not in err and 'File "train.py"' not in err
    assert f"saved {saves / f'run_{iteration}.pth'} and {saves / 'run_checkpoint.pth'}" in out
    checkpoint = read_checkpoint(saves / "run_checkpoint.pth")
    assert checkpoint["iteration"] == iteration
    assert checkpoint["epoch"] * 2 + checkpoint["batches_done"] == iteration  # the failed batch is not consumed
    assert set(read_checkpoint(saves / f"run_{iteration}.pth")) == set(checkpoint["network"])


class _Files(Dataset):
    """Items 0..n-1; those in ``bad`` raise like the loaders do (the message names the file)."""

    def __init__(self, n, bad, error=DatasetError):
        self.n, self.bad, self.error = n, set(bad), error

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if index in self.bad:
            raise self.error(f"/data/{index}.png: unreadable image (broken)")
        return {"x": torch.tensor([index])}


def _batches(dataset, indices):
    loader = DataLoader(SkippingDataset(dataset), batch_sampler=[indices], num_workers=1,
                        collate_fn=collate_skipping)
    return list(loader)


def test_skipped_samples_come_back_from_the_worker_with_their_file():
    batch, = _batches(_Files(5, bad={1, 2}), [1, 4])
    assert batch["x"].tolist() == [[3], [4]]  # 1 and 2 unreadable: the next readable index stands in
    assert batch["skipped"] == ["/data/1.png: unreadable image (broken)", "/data/2.png: unreadable image (broken)"]
    failure, = _batches(_Files(3, bad={0, 1, 2}), [0])
    assert isinstance(failure, DataFailure)
    assert str(failure) == "/data/0.png: unreadable image (broken) (no readable training sample in 3 consecutive tries)"


def test_a_bug_in_the_data_code_is_not_skipped():
    with pytest.raises(KeyError):
        _batches(_Files(3, bad={1}, error=KeyError), [1])


def test_too_many_different_bad_files_stop_the_run():
    counter = SkipCounter()
    for _ in range(100):  # one bad file met again and again does not stop a long run
        counter.add("/data/0.png: broken")
    for i in range(1, MAX_BAD_FILES):
        counter.add(f"/data/{i}.png: broken")
    assert counter.skipped == 100 + MAX_BAD_FILES - 1 and len(counter.files) == MAX_BAD_FILES
    with pytest.raises(TooManyBadFiles, match=f"more than {MAX_BAD_FILES} different .* the last: /data/x.png: broken"):
        counter.add("/data/x.png: broken")


# --------------------------------------------------------------------------- item 12: busy MASTER_PORT
@pytest.mark.parametrize("launcher", ["torch.distributed.run", "torch.distributed.launch"])
def test_busy_master_port_under_a_launcher_fails_in_the_launcher(launcher, davis_root, tmp_path):
    # The launcher's agent binds MASTER_PORT before train.py starts: what the user sees
    # is torch's own traceback, ending as the README says, and nothing is written.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        command = train_command(davis_root, tmp_path, "--iterations", "1")
        command[1:2] = ["-m", launcher, "--nproc_per_node=2", f"--master_port={port}", "train.py"]
        result = run(command)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("torch.distributed.DistNetworkError: ") and "EADDRINUSE" in last
    assert f"port: {port}," in last and "address already in use" in last
    assert "train.py" not in result.stderr.split("Traceback", 1)[1]  # train.py never ran
    assert not (tmp_path / "saves").exists() and not (tmp_path / "runs").exists()


def test_a_bug_while_fetching_a_batch_still_leaves_a_checkpoint(davis_root, tmp_path, monkeypatch, capsys):
    import train
    import training.data

    calls = []

    class BuggyAfterTwo(SkippingDataset):
        def __getitem__(self, index):
            calls.append(index)
            if len(calls) > 2:
                raise KeyError("a bug in the data code")
            return super().__getitem__(index)

    monkeypatch.setattr(training.data, "SkippingDataset", BuggyAfterTwo)
    command = train_command(davis_root, tmp_path, "--iterations", "4", "--num_workers", "0")
    with pytest.raises(KeyError, match="a bug in the data code"):  # not hidden: its traceback is shown
        train.main(command[2:])
    saves = tmp_path / "saves"
    assert f"fetching a batch failed: stopped after iteration 2; resume with --load_model " \
           f"{saves / 'run_checkpoint.pth'}" in capsys.readouterr().out
    checkpoint = read_checkpoint(saves / "run_checkpoint.pth")
    assert (checkpoint["iteration"], checkpoint["epoch"], checkpoint["batches_done"]) == (2, 0, 2)
    assert (saves / "run_2.pth").is_file()
