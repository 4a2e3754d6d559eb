"""Training subsets (the reference's lists by default), train.py's data flags, and
scripts/preview_training_data.py on synthetic data."""
import hashlib
import json
import os

import pytest
from PIL import Image

import train
from dataset import DatasetError
from dataset.synthetic import make_davis_dataset, make_youtube_dataset
from dataset.training_data import (DEFAULT_ROOTS, DEFAULT_SUBSETS, NO_SUBSETS, build_stage_dataset,
                                   check_stage_data, data_options, resolve_subsets)
from scripts import preview_training_data
from tests.test_training_data_sampling import exact_law
from training.args import SCHEDULE_ARGS, parse_train_args

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def main_roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("main")
    make_davis_dataset(root / "davis", num_sequences=3, num_frames=6, size=(32, 48), seed=0, splits=("train", "val"))
    make_youtube_dataset(root / "yt", num_videos=3, num_frames=6, size=(32, 48), seed=0, split="train")
    return {"davis_root": str(root / "davis"), "yv_root": str(root / "yt" / "train")}


def test_shipped_lists_are_the_reference_files():
    expected = {"davis_subset.txt": ("ffe56e7ed6483349a3323fd9ea832cf5", 60),
                "yv_subset.txt": ("7bf7c19a63bcc9edb8b9730763890b26", 3464)}
    for part, path in DEFAULT_SUBSETS.items():
        with open(path, "rb") as f:
            data = f.read()
        md5, count = expected[os.path.basename(path)]
        assert hashlib.md5(data).hexdigest() == md5
        assert len(data.decode().split()) == count
    assert os.path.dirname(DEFAULT_SUBSETS["davis"]) == os.path.join(REPO, "dataset", "subsets")


def test_default_roots_and_flags():
    assert DEFAULT_ROOTS["yv_root"] == os.path.join(os.path.dirname(REPO), "YouTube", "train")
    args = parse_train_args(["--stage", "3", "--id", "x", "-b", "2", "-i", "40"])
    assert (args.batch_size, args.iterations, args.frame_sampling, args.no_subset) == (2, 40, "reference", False)
    assert data_options(args) == {"subsets": DEFAULT_SUBSETS, "frame_sampling": "reference"}
    args = parse_train_args(["--stage", "3", "--id", "x", "--no_subset", "--yv_subset", "mine.txt",
                             "--frame_sampling", "uniform"])
    assert data_options(args) == {"subsets": {"davis": None, "youtube": "mine.txt"}, "frame_sampling": "uniform"}
    assert resolve_subsets(davis_subset="d.txt") == {**DEFAULT_SUBSETS, "davis": "d.txt"}
    assert {"frame_sampling", "no_subset"} <= set(SCHEDULE_ARGS)


def test_videos_missing_from_the_list_are_skipped_and_reported(main_roots, tmp_path, capsys):
    davis_list, yv_list = tmp_path / "davis.txt", tmp_path / "yv.txt"
    davis_list.write_text("seq_train_000\nseq_train_002\nseq_val_001\nnot_there")  # last line without newline
    yv_list.write_text("yt_train_001\n")
    subsets = resolve_subsets(davis_subset=davis_list, yv_subset=yv_list)
    check_stage_data(3, main_roots, subsets=subsets)
    with pytest.warns(UserWarning, match="1 video.*of the subset not found: not_there"):
        dataset, (davis, youtube) = build_stage_dataset(3, main_roots, crop_size=32, subsets=subsets)
    assert davis.videos == ["seq_train_000", "seq_train_002", "seq_val_001"] and youtube.videos == ["yt_train_001"]
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"DAVIS: 3 video(s) kept, 3 skipped (not listed in {davis_list}); 1 listed video(s) not found",
                       f"YouTube-VOS: 1 video(s) kept, 2 skipped (not listed in {yv_list})"]
    assert len(dataset) == 5 * 3 + 1
    # Without a list: DAVIS falls back to the data's ImageSets/2017/train.txt, YouTube-VOS takes every video.
    _, (davis, youtube) = build_stage_dataset(3, main_roots, crop_size=32, subsets=NO_SUBSETS)
    assert davis.videos == [f"seq_train_00{i}" for i in range(3)] and len(youtube.videos) == 3


def test_a_list_that_keeps_nothing_stops_before_training(main_roots, tmp_path, capsys):
    # The reference's lists do not name synthetic videos: a clear message, no training.
    with pytest.raises(DatasetError) as error:
        check_stage_data(3, main_roots, subsets=DEFAULT_SUBSETS)
    message = str(error.value)
    assert f"DAVIS: none of the 6 videos in {os.path.join(main_roots['davis_root'], 'JPEGImages', '480p')} " \
           f"is listed in {DEFAULT_SUBSETS['davis']}, so every video would be skipped" in message
    assert "YouTube-VOS: none of the 3 videos" in message and "--no_subset" in message
    code = train.main(["--stage", "3", "--id", "none", "--main_data", "davis", "--davis_root", main_roots["davis_root"],
                       "--save_dir", str(tmp_path / "saves"), "--log_dir", str(tmp_path / "runs"),
                       "--device", "cpu", "--no_pretrained", "--key_backbone", "resnet18"])
    assert code == 1
    assert "DAVIS: none of the 6 videos" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "saves")
    unreadable = tmp_path / "absent.txt"
    with pytest.raises(DatasetError, match=f"DAVIS: {unreadable} does not exist"):
        check_stage_data(3, main_roots, youtube=False, subsets={"davis": str(unreadable)})


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_preview_script_on_synthetic_davis(main_roots, tmp_path, capsys):
    out = tmp_path / "preview"
    code = preview_training_data.main(["--stage", "3", "--main_data", "davis", "--davis_root", main_roots["davis_root"],
                                       "--no_subset", "--crop_size", "32", "--samples", "10", "--seed", "1",
                                       "--max_jump", "3", "--output", str(out)])
    assert code == 0
    rows = read_jsonl(out / "samples.jsonl")
    assert len(rows) == 10
    names = {f"seq_train_00{i}" for i in range(3)}
    for row in rows:
        assert list(row) == ["dataset", "video", "num_frames", "frames", "max_jump", "objects"]
        assert row["dataset"] == "DAVIS" and row["video"] in names and row["num_frames"] == 6
        assert row["max_jump"] == 3 and tuple(row["frames"]) in exact_law(6, 3)
        assert 1 <= len(row["objects"]) <= 2 and all(label in (1, 2) for label in row["objects"])
    # 3 videos, 10 samples: every video at least 3 times (a seeded permutation per epoch).
    assert sorted(r["video"] for r in rows).count("seq_train_000") >= 3
    grids = sorted(p.name for p in out.glob("grid_*.png"))
    assert grids == ["grid_000.png", "grid_001.png"]
    with Image.open(out / "grid_000.png") as grid:
        assert grid.size == (3 * 32 + 2 * 2, 8 * 32 + 7 * 2)
    assert "10 sample(s) of stage 3" in capsys.readouterr().out
    # Same seed, same samples.
    again = tmp_path / "again"
    preview_training_data.main(["--stage", "3", "--main_data", "davis", "--davis_root", main_roots["davis_root"],
                                "--no_subset", "--crop_size", "32", "--samples", "10", "--seed", "1",
                                "--max_jump", "3", "--output", str(again)])
    assert read_jsonl(again / "samples.jsonl") == rows


def test_preview_script_static_stage_and_errors(tmp_path, capsys):
    folder = tmp_path / "static" / "ecssd"
    os.makedirs(folder)
    Image.new("RGB", (40, 40), (200, 10, 10)).save(folder / "a.jpg")
    mask = Image.new("L", (40, 40), 0)
    mask.paste(255, (10, 10, 30, 30))
    mask.save(folder / "a.png")
    out = tmp_path / "preview"
    with pytest.warns(UserWarning, match="static data folder"):
        code = preview_training_data.main(["--stage", "0", "--static_root", str(tmp_path / "static"),
                                           "--crop_size", "24", "--samples", "2", "--output", str(out)])
    assert code == 0
    assert read_jsonl(out / "samples.jsonl") == [
        {"dataset": "ecssd", "video": "ecssd/a.jpg", "num_frames": 1, "frames": [0, 0, 0], "max_jump": None,
         "objects": [1]}] * 2
    code = preview_training_data.main(["--stage", "1", "--bl30k_root", str(tmp_path / "nowhere"),
                                       "--output", str(out)])
    assert code == 1 and "BL30K: " in capsys.readouterr().err
