"""Synthetic DAVIS / YouTube-VOS generator: determinism, layout, ids and YouTube metadata."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from dataset.synthetic import MIN_VISIBLE_FRACTION, make_davis_dataset, make_youtube_dataset
from scripts import make_synthetic
from util.palette import DAVIS_PALETTE, load_annotation

SIZE = (32, 48)


def tree_bytes(root):
    return {os.path.relpath(p, root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_davis_same_seed_same_bytes_and_different_seed_differs(tmp_path):
    kwargs = dict(num_sequences=2, num_frames=3, size=SIZE, max_objects=2)
    make_davis_dataset(tmp_path / "a", seed=5, **kwargs)
    make_davis_dataset(tmp_path / "b", seed=5, **kwargs)
    make_davis_dataset(tmp_path / "c", seed=6, **kwargs)
    a, b, c = (tree_bytes(tmp_path / name) for name in "abc")
    assert len(a) == 2 * 2 * 3 * 2 + 4  # splits x sequences x frames x (jpg, png) + 4 lists
    assert a == b
    assert a.keys() == c.keys()
    assert any(a[key] != c[key] for key in a if key.endswith(".jpg"))


def test_davis_layout_palette_and_ids(tmp_path):
    names = make_davis_dataset(tmp_path, num_sequences=3, num_frames=4, size=SIZE, max_objects=3, seed=0,
                               prefix="toy")
    assert names == {split: [f"toy_{split}_{i:03d}" for i in range(3)] for split in ("train", "val")}
    counts = set()
    for split, sequences in names.items():
        for year in ("2017", "2016"):
            listing = (tmp_path / "ImageSets" / year / f"{split}.txt").read_text()
            assert listing.splitlines() == sequences
        for seq in sequences:
            frames = sorted(os.listdir(tmp_path / "JPEGImages" / "480p" / seq))
            assert frames == [f"{t:05d}.jpg" for t in range(4)]
            with Image.open(tmp_path / "JPEGImages" / "480p" / seq / "00000.jpg") as image:
                assert (image.mode, image.size) == ("RGB", (SIZE[1], SIZE[0]))
            first = tmp_path / "Annotations" / "480p" / seq / "00000.png"
            with Image.open(first) as image:
                assert image.mode == "P"
                assert bytes(image.getpalette()) == DAVIS_PALETTE
            num_objects = int(load_annotation(first).max())
            assert 1 <= num_objects <= 3
            counts.add(num_objects)
            for t in range(4):
                labels = load_annotation(tmp_path / "Annotations" / "480p" / seq / f"{t:05d}.png")
                assert labels.shape == SIZE
                areas = np.bincount(labels.ravel(), minlength=num_objects + 1)
                assert len(areas) == num_objects + 1  # ids 1..K only
                assert areas[1:].min() >= MIN_VISIBLE_FRACTION * SIZE[0] * SIZE[1]
    assert len(counts) > 1  # the number of objects varies between sequences


def test_objects_move_between_frames(tmp_path):
    make_davis_dataset(tmp_path, num_sequences=1, num_frames=6, size=SIZE, max_objects=1, seed=2, splits=("val",))
    first = load_annotation(tmp_path / "Annotations" / "480p" / "seq_val_000" / "00000.png")
    last = load_annotation(tmp_path / "Annotations" / "480p" / "seq_val_000" / "00005.png")
    assert not np.array_equal(first, last)


def youtube_objects(meta, video):
    return {int(k): v["frames"] for k, v in meta["videos"][video]["objects"].items()}


def test_youtube_valid_meta_matches_annotations_and_ground_truth(tmp_path):
    videos = make_youtube_dataset(tmp_path, num_videos=3, num_frames=6, size=SIZE, max_objects=3, seed=4)
    assert videos == ["yt_valid_000", "yt_valid_001", "yt_valid_002"]
    meta = json.loads((tmp_path / "valid" / "meta.json").read_text())
    assert sorted(meta["videos"]) == videos
    names = [f"{5 * i:05d}" for i in range(6)]
    mid_video = 0
    for video in videos:
        objects = youtube_objects(meta, video)
        ids = sorted(objects)
        assert ids != list(range(1, len(ids) + 1))  # not contiguous
        assert all(v["category"] == "synthetic" for v in meta["videos"][video]["objects"].values())
        jpgs = sorted(os.listdir(tmp_path / "valid" / "JPEGImages" / video))
        assert jpgs == [n + ".jpg" for n in names]
        first_frames = {frames[0] for frames in objects.values()}
        mid_video += len(first_frames - {"00000"})
        annotated = sorted(os.listdir(tmp_path / "valid" / "Annotations" / video))
        assert annotated == sorted(f + ".png" for f in first_frames)
        for frame in first_frames:
            labels = load_annotation(tmp_path / "valid" / "Annotations" / video / (frame + ".png"))
            assert set(np.unique(labels)) - {0} == {i for i, frames in objects.items() if frames[0] == frame}
        for obj_id, frames in objects.items():
            assert frames == names[names.index(frames[0]):]  # present from first appearance to the end
            for name in names:
                gt = load_annotation(tmp_path / "valid_gt" / "Annotations" / video / (name + ".png"))
                assert set(np.unique(gt)) <= {0, *ids}
                assert (obj_id in gt) == (name in frames)
    assert mid_video >= 3  # the last object of every video appears mid-video


def test_youtube_train_annotates_every_nth_frame(tmp_path):
    videos = make_youtube_dataset(tmp_path, num_videos=2, num_frames=7, size=SIZE, max_objects=2, seed=0,
                                  split="train", frame_step=1, annotate_every=3)
    meta = json.loads((tmp_path / "train" / "meta.json").read_text())
    assert not (tmp_path / "train_gt").exists()
    for video in videos:
        assert len(os.listdir(tmp_path / "train" / "JPEGImages" / video)) == 7
        assert sorted(os.listdir(tmp_path / "train" / "Annotations" / video)) == ["00000.png", "00003.png",
                                                                                   "00006.png"]
        for obj_id, frames in youtube_objects(meta, video).items():
            assert set(frames) <= {"00000", "00003", "00006"}
            for frame in frames:
                assert obj_id in load_annotation(tmp_path / "train" / "Annotations" / video / (frame + ".png"))


def test_youtube_is_deterministic(tmp_path):
    for name in ("a", "b"):
        make_youtube_dataset(tmp_path / name, num_videos=1, num_frames=4, size=SIZE, seed=9)
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="split"):
        make_youtube_dataset(tmp_path, split="val")
    with pytest.raises(ValueError, match="size"):
        make_davis_dataset(tmp_path, size=(8, 8))
    with pytest.raises(ValueError, match="seed"):
        make_davis_dataset(tmp_path, seed=-1)


def test_cli_writes_both_formats(tmp_path, capsys):
    assert make_synthetic.main(["--format", "youtube", "--out", str(tmp_path / "yt"), "--num", "1",
                                "--frames", "3", "--size", "32", "48", "--objects", "2"]) == 0
    assert (tmp_path / "yt" / "valid" / "meta.json").is_file()
    assert make_synthetic.main(["--format", "davis", "--out", str(tmp_path / "d"), "--num", "1", "--frames", "3",
                                "--size", "32", "48", "--splits", "val"]) == 0
    assert (tmp_path / "d" / "ImageSets" / "2017" / "val.txt").read_text() == "seq_val_000\n"
    assert make_synthetic.main(["--format", "davis", "--out", str(tmp_path / "e"), "--objects", "0"]) == 2
    assert "max_objects" in capsys.readouterr().err
