"""resize_youtube / resize_length on a small synthetic YouTube-format folder."""
import os

import numpy as np
import pytest
from PIL import Image

from scripts import resize_length, resize_youtube
from util.palette import load_palette

# A palette that is not the DAVIS one, so "palette kept" is a real check.
PALETTE = bytes((index * 7 + channel * 50) % 256 for index in range(256) for channel in range(3))
VIDEOS = {"landscape": (64, 36), "portrait": (36, 64)}  # (width, height)


def labels_for(width, height):
    labels = np.zeros((height, width), np.uint8)
    labels[: height // 2, : width // 2] = 1
    labels[height // 2:, width // 2:] = 7  # non-contiguous ids must survive unchanged
    return labels


def make_youtube(root):
    rng = np.random.default_rng(0)
    for video, (width, height) in VIDEOS.items():
        os.makedirs(root / "JPEGImages" / video)
        os.makedirs(root / "Annotations" / video)
        for index in range(3):
            pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "JPEGImages" / video / f"{index * 5:05d}.jpg")
        mask = Image.fromarray(labels_for(width, height), mode="P")
        mask.putpalette(PALETTE)
        mask.save(root / "Annotations" / video / "00000.png")  # YouTube annotates sparsely
    (root / "meta.json").write_text('{"videos": {}}')


def test_resize_youtube_sizes_palette_and_labels(tmp_path):
    source, output = tmp_path / "train", tmp_path / "train_24"
    make_youtube(source)
    code = resize_youtube.main(["--input", str(source), "--output", str(output), "--length", "24",
                                "--workers", "2"])
    assert code == 0
    expected = {"landscape": (43, 24), "portrait": (24, 43)}
    for video, size in expected.items():
        frames = sorted(os.listdir(output / "JPEGImages" / video))
        assert frames == ["00000.jpg", "00005.jpg", "00010.jpg"]
        for name in frames:
            with Image.open(output / "JPEGImages" / video / name) as image:
                assert image.size == size and image.format == "JPEG"
        path = output / "Annotations" / video / "00000.png"
        with Image.open(path) as image:
            assert image.mode == "P" and image.size == size
            labels = np.array(image)
        assert load_palette(path) == PALETTE
        assert set(np.unique(labels)) == {0, 1, 7}
        # nearest resizing keeps the quadrant layout: top-left is 1, bottom-right 7
        assert labels[0, 0] == 1 and labels[-1, -1] == 7 and labels[0, -1] == 0
    assert (output / "meta.json").read_text() == '{"videos": {}}'


def test_restart_skips_finished_videos(tmp_path):
    source, output = tmp_path / "train", tmp_path / "out"
    make_youtube(source)
    first = resize_length.resize_dataset(str(source), str(output), 24, workers=1)
    assert first == {"resized": 2, "skipped": 0, "failed": []}
    kept = output / "JPEGImages" / "landscape" / "00005.jpg"
    os.utime(kept, (1, 1))
    os.remove(output / "Annotations" / "portrait" / "00000.png")  # as if interrupted there
    second = resize_length.resize_dataset(str(source), str(output), 24, workers=1)
    assert second == {"resized": 1, "skipped": 1, "failed": []}
    assert os.stat(kept).st_mtime == 1
    assert (output / "Annotations" / "portrait" / "00000.png").exists()
    assert not [name for _, _, files in os.walk(output) for name in files if name.endswith(".tmp")]


def test_frames_already_at_length_are_copied_byte_for_byte(tmp_path):
    source, output = tmp_path / "train", tmp_path / "out"
    make_youtube(source)
    resize_length.resize_dataset(str(source), str(output), 36, workers=1)
    original = source / "JPEGImages" / "landscape" / "00000.jpg"
    assert (output / "JPEGImages" / "landscape" / "00000.jpg").read_bytes() == original.read_bytes()


@pytest.mark.parametrize("size,length,expected", [((1280, 720), 480, (853, 480)), ((720, 1280), 480, (480, 853)),
                                                  ((640, 360), 480, (853, 480)), ((500, 500), 480, (480, 480))])
def test_resized_size(size, length, expected):
    assert resize_length.resized_size(*size, length) == expected


def test_missing_folder_and_bad_annotation_are_reported(tmp_path, capsys):
    (tmp_path / "empty" / "JPEGImages").mkdir(parents=True)
    assert resize_length.main(["--input", str(tmp_path / "empty"), "--output", str(tmp_path / "o")]) == 1
    assert "no Annotations/ folder" in capsys.readouterr().err
    source = tmp_path / "train"
    make_youtube(source)
    rgb = source / "Annotations" / "portrait" / "00000.png"
    Image.new("RGB", (36, 64), (255, 0, 0)).save(rgb)
    code = resize_length.main(["--input", str(source), "--output", str(tmp_path / "o2"), "--length", "24",
                               "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1 and str(rgb) in err and "palette" in err
    assert (tmp_path / "o2" / "Annotations" / "landscape" / "00000.png").exists()


def test_resize_youtube_defaults_point_beside_the_repository(monkeypatch):
    seen = {}
    monkeypatch.setattr(resize_youtube, "run", lambda args: seen.setdefault("args", args) and 0)
    resize_youtube.main([])
    repo_parent = os.path.dirname(resize_youtube.REPO_ROOT)
    args = seen["args"]
    assert args.input == os.path.join(repo_parent, "YouTube", "train")
    assert args.output == os.path.join(repo_parent, "YouTube", "train_480p")
    assert args.length == 480
