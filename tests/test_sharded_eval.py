"""Sharded evaluation (issue 14, item 6): the plan that deals the videos to the
processes, the merged summary, and a real 2-process gloo torchrun run of
eval_davis.py that gives byte-identical results and CSV tables to 1 process."""
import os
import socket
import subprocess
import sys
import zipfile

import pytest
import torch

from dataset.synthetic import make_davis_dataset, make_youtube_dataset
from inference_core import sharding
from inference_core.video_runner import RunSummary
from model.network import IMSFR
from tests.helpers_files import read_tree

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_plan_is_greedy_longest_first_onto_the_least_loaded_rank():
    sizes = [5, 9, 2, 9, 1]
    # 9 (item 1) -> rank 0, 9 (item 3) -> rank 1, 5 -> rank 0 (tie: lower rank), 2 -> rank 1, 1 -> rank 1
    assert sharding.plan(sizes, 2) == [[0, 1], [2, 3, 4]]
    assert sharding.plan(sizes, 1) == [[0, 1, 2, 3, 4]]
    assert sharding.plan(sizes, 4) == [[1], [3], [0], [2, 4]]
    assert sharding.plan([], 3) == [[], [], []]
    sizes = [(7 * i) % 23 + 1 for i in range(40)]
    for ranks in (2, 3, 5):
        shards = sharding.plan(sizes, ranks)
        assert sorted(i for shard in shards for i in shard) == list(range(40))
        loads = [sum(sizes[i] for i in shard) for shard in shards]
        assert max(loads) - min(loads) <= max(sizes)
        assert sharding.plan(sizes, ranks) == shards  # deterministic


def test_summaries_merge_in_reader_order():
    first = RunSummary(done=["c", "a"], failures=[("e", "bad")], frames=10, processed=8, seconds=2.0,
                       peak_memory=5)
    second = RunSummary(done=["b"], skipped=["d"], failures=[("a0", "worse")], frames=4, processed=4,
                        seconds=1.0, peak_memory=7)
    merged = sharding.merge([first, second], ["a", "a0", "b", "c", "d", "e"])
    assert merged.done == ["a", "b", "c"] and merged.skipped == ["d"]
    assert merged.failures == [("a0", "worse"), ("e", "bad")]
    assert (merged.frames, merged.processed, merged.seconds) == (14, 12, 3.0)
    assert (merged.peak_memory, merged.processes, merged.exit_code()) == (7, 2, 1)


def test_single_process_is_untouched(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)

    class Args:
        device = "cpu"

    args = Args()
    assert sharding.join(args) is sharding.SINGLE and args.device == "cpu"
    assert not torch.distributed.is_initialized()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]




def clean_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def torchrun(processes):
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
            f"--master_port={free_port()}"]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "net.pth"
    torch.save(IMSFR(pretrained=False, key_backbone="resnet18").state_dict(), path)
    return path


def test_two_gloo_processes_give_the_results_of_one(weights, tmp_path):
    root = tmp_path / "2017"
    names = make_davis_dataset(root / "trainval", num_sequences=3, num_frames=4, size=(48, 64),
                               splits=("val",))["val"]
    env = clean_env()
    common = ["eval_davis.py", "--model", str(weights), "--davis_path", str(root), "--device", "cpu",
              "--eval_workers", "1", "--mem_every", "1", "--sample_threshold", "1", "--sample_fraction", "0.5",
              "--anchors", "0", "-2"]
    runs = {}
    for label, launcher in (("one", [sys.executable]), ("two", torchrun(2))):
        out = tmp_path / label
        done = subprocess.run(launcher + common + ["--output", str(out)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        runs[label] = (read_tree(out), done.stdout)
    (one, one_text), (two, two_text) = runs["one"], runs["two"]
    assert sorted(two) == sorted(one)
    assert {path for path in one if path.endswith(".png")} == {
        os.path.join(name, f"{t:05d}.png") for name in names for t in range(4)}
    assert "global_results-val.csv" in one and "per-sequence_results-val.csv" in one
    for path in one:
        assert two[path] == one[path], path  # PNGs, manifests and CSV tables byte-identical
    # Split 2 + 1 by frame count; reported and scored once, with the merged summary.
    assert "process 0 of 2: 2 videos, 8 frames" in two_text and "process 1 of 2: 1 videos, 4 frames" in two_text
    assert two_text.count("Global results for val") == 1 and two_text.count("Processed 3 videos, 12 frames") == 1
    assert "per process, 2 processes" in two_text
    assert "process 0 of" not in one_text and "Processed 3 videos, 12 frames" in one_text


def test_youtube_zip_is_written_once_from_every_process(weights, tmp_path):
    root = tmp_path / "yv"
    names = make_youtube_dataset(root, num_videos=3, num_frames=4, size=(48, 64), max_objects=2)
    out = tmp_path / "out"
    done = subprocess.run(torchrun(2) + ["eval_youtube.py", "--model", str(weights), "--yv_path", str(root),
                                         "--output", str(out), "--device", "cpu"],
                          cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "process 1 of 2: 1 videos" in done.stdout
    assert done.stdout.count("Archive for the server") == 1 and done.stdout.count("Processed 3 videos") == 1
    written = {os.path.join("Annotations", path) for path in read_tree(out / "Annotations")
               if path.endswith(".png")}
    assert {path.split(os.sep)[1] for path in written} == set(names)
    with zipfile.ZipFile(f"{out}.zip") as archive:
        assert set(archive.namelist()) == {path.replace(os.sep, "/") for path in written}
        for path in written:
            assert archive.read(path.replace(os.sep, "/")) == (out / path).read_bytes()
