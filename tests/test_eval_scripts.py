"""Evaluation scripts end to end on tiny synthetic benchmarks (random-init
ResNet-18 network on CPU): outputs, ids, mid-video objects, re-runs,
determinism, archives, overlays and the errors of bad input."""
import json
import os
import shutil
import zipfile

import cv2
import numpy as np
import pytest
from PIL import Image

import eval_davis
import eval_davis_2016
import eval_generic
import eval_youtube
from inference_core.data import SequenceError
from inference_core.data.objects import load_objects
from inference_core.data.readers import DavisSet, YouTubeSet
from dataset.synthetic import make_davis_dataset, make_youtube_dataset
from util.output_guard import MANIFEST
from tests.helpers_capture import progress_to_current_streams
from util.overlay import blend, write_overlay
from util.palette import DAVIS_PALETTE, load_annotation, save_palette_png

H, W = 48, 64
FRAMES = 4
# Sampling from the second memory frame on, so that the sampler's seed matters.
SAMPLING = ["--mem_every", "1", "--sample_threshold", "1", "--sample_fraction", "0.5", "--anchors", "0", "-2"]


pytestmark = pytest.mark.usefixtures("cached_network")


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis") / "2017"
    names = make_davis_dataset(root / "trainval", num_sequences=2, num_frames=FRAMES, size=(H, W), splits=("val",))
    return str(root), names["val"]


@pytest.fixture(scope="module")
def youtube(tmp_path_factory):
    """YouTube-VOS valid, 5 frames; video 0 lists no object at its last frame (not scored)."""
    root = tmp_path_factory.mktemp("youtube")
    names = make_youtube_dataset(root, num_videos=2, num_frames=5, size=(H, W), max_objects=3)
    meta_path = root / "valid" / "meta.json"
    meta = json.loads(meta_path.read_text())
    for entry in meta["videos"][names[0]]["objects"].values():
        entry["frames"].remove("00020")
    meta_path.write_text(json.dumps(meta))
    return str(root), names, meta["videos"]


def run(script, argv, capsys):
    """Call a script's main; returns its exit code and what it printed."""
    with progress_to_current_streams():
        code = script.main(argv)
    return code, capsys.readouterr().out


def read_folder(folder):
    """{file name: label map} of a result folder; every file but the manifest must be a palette PNG."""
    masks = {}
    for name in sorted(set(os.listdir(folder)) - {MANIFEST}):
        with Image.open(os.path.join(folder, name)) as image:
            assert image.mode == "P"
            masks[name] = np.array(image)
    return masks


def mtimes(folder):
    return {name: os.stat(os.path.join(folder, name)).st_mtime_ns for name in os.listdir(folder)}


# ----------------------------------------------------------------------------- DAVIS


def test_davis2017_outputs_rerun_skip_and_determinism(weights, davis, tmp_path, capsys):
    root, names = davis
    out = str(tmp_path / "d17")
    argv = ["--model", weights, "--davis_path", root, "--output", out, "--device", "cpu",
            "--eval_workers", "1", *SAMPLING]
    code, text = run(eval_davis, argv, capsys)
    assert code == 0, text
    gt_root = os.path.join(root, "trainval", "Annotations", "480p")
    first_run = {}
    for name in names:
        masks = read_folder(os.path.join(out, name))
        assert sorted(masks) == [f"{t:05d}.png" for t in range(FRAMES)]
        gt0 = load_annotation(os.path.join(gt_root, name, "00000.png"))
        for labels in masks.values():
            assert labels.shape == (H, W)
            assert set(np.unique(labels)) <= set(range(int(gt0.max()) + 1))
        np.testing.assert_array_equal(masks["00000.png"], gt0)  # the given frame is reproduced
        first_run[name] = masks
        assert f"{name}: {FRAMES} frames" in text
    assert "FPS" in text and "J&F-Mean" in text
    header = open(os.path.join(out, "global_results-val.csv")).readline().strip()
    assert header == "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay"

    before = {name: mtimes(os.path.join(out, name)) for name in names}
    code, text = run(eval_davis, argv + ["--no_eval"], capsys)
    assert code == 0
    assert all(f"{name}: already complete, skipped" in text for name in names)
    assert {name: mtimes(os.path.join(out, name)) for name in names} == before

    code, text = run(eval_davis, argv + ["--no_eval", "--overwrite"], capsys)
    assert code == 0 and "skipped" not in text
    for name in names:
        again = read_folder(os.path.join(out, name))
        assert mtimes(os.path.join(out, name)) != before[name]
        assert again.keys() == first_run[name].keys()
        for frame, labels in again.items():
            np.testing.assert_array_equal(labels, first_run[name][frame])


def test_davis2016_merges_objects_into_one(weights, davis, tmp_path, capsys):
    root, names = davis
    out = str(tmp_path / "d16")
    code, text = run(eval_davis_2016, ["--model", weights, "--davis_path", os.path.join(root, "trainval"),
                                       "--output", out, "--device", "cpu", "--eval_workers", "1"], capsys)
    assert code == 0, text
    for name in names:
        masks = read_folder(os.path.join(out, name))
        assert len(masks) == FRAMES
        assert all(set(np.unique(m)) <= {0, 1} and m.shape == (H, W) for m in masks.values())
        gt0 = load_annotation(os.path.join(root, "trainval", "Annotations", "480p", name, "00000.png"))
        np.testing.assert_array_equal(masks["00000.png"], (gt0 > 0).astype(np.uint8))
    assert os.path.isfile(os.path.join(out, "per-sequence_results-val.csv"))


def test_davis2016_reads_the_original_480p_list(tmp_path):
    (tmp_path / "ImageSets" / "480p").mkdir(parents=True)
    (tmp_path / "ImageSets" / "480p" / "val.txt").write_text(
        "/JPEGImages/480p/blackswan/00000.jpg /Annotations/480p/blackswan/00000.png\n"
        "/JPEGImages/480p/blackswan/00001.jpg /Annotations/480p/blackswan/00001.png\n"
        "/JPEGImages/480p/cows/00000.jpg /Annotations/480p/cows/00000.png\n")
    assert DavisSet(str(tmp_path), "2016", "val").names == ["blackswan", "cows"]
    (tmp_path / "ImageSets" / "480p" / "val.txt").write_text("blackswan\n")
    with pytest.raises(SequenceError, match=r"val\.txt: cannot read line 'blackswan'"):
        DavisSet(str(tmp_path), "2016", "val")


# ----------------------------------------------------------------------------- YouTube-VOS


def test_youtube_objects_ids_scored_frames_and_zip(weights, youtube, tmp_path, capsys):
    root, names, meta = youtube
    out = str(tmp_path / "yv")
    code, text = run(eval_youtube, ["--model", weights, "--yv_path", root, "--output", out, "--device", "cpu"],
                     capsys)
    assert code == 0, text
    members = set()
    for name in names:
        objects = {int(i): sorted(entry["frames"]) for i, entry in meta[name]["objects"].items()}
        scored = sorted({f for frames in objects.values() for f in frames})
        masks = read_folder(os.path.join(out, "Annotations", name))
        assert sorted(masks) == [f + ".png" for f in scored]
        members |= {f"Annotations/{name}/{f}.png" for f in scored}
        assert any(frames[0] != "00000" for frames in objects.values())  # a mid-video object exists
        for obj_id, frames in objects.items():
            given = load_annotation(os.path.join(root, "valid", "Annotations", name, frames[0] + ".png"))
            np.testing.assert_array_equal(masks[frames[0] + ".png"] == obj_id, given == obj_id)
            for frame, labels in masks.items():
                assert labels.shape == (H, W)
                assert set(np.unique(labels)) <= {0, *objects}  # original, non-contiguous ids
                if frame < frames[0] + ".png":
                    assert obj_id not in labels
    assert names[0] + ": 5 frames" in text
    with zipfile.ZipFile(out + ".zip") as archive:
        assert set(archive.namelist()) == members
        member = f"Annotations/{names[1]}/00005.png"
        with archive.open(member) as f:
            np.testing.assert_array_equal(np.array(Image.open(f)), read_folder(os.path.join(
                out, "Annotations", names[1]))["00005.png"])


def test_youtube_reader_all_frames_and_save_all(youtube, tmp_path):
    root, names, _ = youtube
    copy = tmp_path / "yv"
    shutil.copytree(root, copy)
    all_frames = copy / "all_frames" / "valid_all_frames" / "JPEGImages" / names[0]
    shutil.copytree(copy / "valid" / "JPEGImages" / names[0], all_frames)
    shutil.copy(all_frames / "00005.jpg", all_frames / "00006.jpg")
    spec = YouTubeSet(str(copy), "valid").video(names[0])
    assert [os.path.basename(p) for p in spec.frame_paths][:3] == ["00000.jpg", "00005.jpg", "00006.jpg"]
    assert sorted(spec.output_names().values()) == ["00000.png", "00005.png", "00010.png", "00015.png"]
    spec = YouTubeSet(str(copy), "valid", save_all=True).video(names[0])
    assert len(spec.output_names()) == 6


def test_youtube_listed_object_missing_from_its_annotation(youtube, tmp_path):
    root, names, meta = youtube
    copy = tmp_path / "yv"
    shutil.copytree(root, copy)
    edited = json.loads(json.dumps({"videos": meta}))
    edited["videos"][names[0]]["objects"]["9"] = {"frames": ["00000", "00005"]}
    (copy / "valid" / "meta.json").write_text(json.dumps(edited))
    spec = YouTubeSet(str(copy), "valid").video(names[0])
    with pytest.raises(SequenceError, match=rf"{names[0]}.00000\.png: label id 9 is not present"):
        load_objects(spec)


# ----------------------------------------------------------------------------- own videos


def test_generic_folder_resized_processing_and_overlays(weights, youtube, tmp_path, capsys):
    root, names, _ = youtube
    data = os.path.join(root, "valid")  # JPEGImages/<video>/ + Annotations/<video>/ where objects appear
    out = str(tmp_path / "mine")
    code, text = run(eval_generic, ["--model", weights, "--data", data, "--output", out, "--device", "cpu",
                                    "--size", "32", "--overlay", "gif"], capsys)
    assert code == 0, text
    for name in names:
        masks = read_folder(os.path.join(out, name))
        assert len(masks) == 5 and all(m.shape == (H, W) for m in masks.values())
        annotations = sorted(os.listdir(os.path.join(data, "Annotations", name)))
        for frame in annotations:  # given pixels are exact although processed at 32x48
            given = load_annotation(os.path.join(data, "Annotations", name, frame))
            for obj_id in set(np.unique(given)) - {0}:
                np.testing.assert_array_equal(masks[frame] == obj_id, given == obj_id)
        with Image.open(os.path.join(data, "Annotations", name, annotations[0])) as image:
            palette = image.getpalette()
        with Image.open(os.path.join(out, name, "00000.png")) as image:
            assert image.getpalette() == palette
        with Image.open(os.path.join(out, "overlays", name + ".gif")) as gif:
            assert gif.n_frames == 5 and gif.size == (W, H)

    single = str(tmp_path / "single")
    code, text = run(eval_generic, ["--model", weights, "--frames", os.path.join(data, "JPEGImages", names[0]),
                                    "--masks", os.path.join(data, "Annotations", names[0]), "--output", single,
                                    "--device", "cpu", "--size", "32", "--overlay", "strip"], capsys)
    assert code == 0, text
    assert read_folder(os.path.join(single, names[0])).keys() == read_folder(os.path.join(out, names[0])).keys()
    with Image.open(os.path.join(single, "overlays", names[0] + ".png")) as image:
        assert image.size == (5 * 213, 160)  # 5 thumbnails of 213x160


def test_overlay_blend_and_mp4(tmp_path):
    image = np.full((4, 6, 3), 100, np.uint8)
    labels = np.zeros((4, 6), np.uint8)
    labels[1, 2] = 1  # DAVIS colour 1 = (128, 0, 0)
    out = blend(image, labels, DAVIS_PALETTE, alpha=0.5)
    assert out[1, 2].tolist() == [114, 50, 50] and out[0, 0].tolist() == [100, 100, 100]
    with pytest.raises(ValueError, match="frame is 6x4 but the mask 5x4"):
        blend(image, labels[:, :5])
    frames = [np.full((33, 48, 3), 40 * t, np.uint8) for t in range(4)]
    path = str(tmp_path / "clip.mp4")
    write_overlay(path, "mp4", frames, [np.zeros((33, 48), np.uint8)] * 4)
    capture = cv2.VideoCapture(path)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    assert (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (48, 32)
    capture.release()
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]  # no temporary file left


# ----------------------------------------------------------------------------- bad input


def _broken_davis(root):
    """Sequence 0 is good; every other sequence has one defect. Returns {sequence: expected message}."""
    names = make_davis_dataset(root, num_sequences=8, num_frames=4, size=(H, W), splits=("val",))["val"]
    frames = os.path.join(root, "JPEGImages", "480p")
    masks = os.path.join(root, "Annotations", "480p")
    expected = {}
    os.remove(os.path.join(masks, names[1], "00000.png"))
    expected[names[1]] = os.path.join(masks, names[1], "00000.png") + ": first-frame annotation not found"
    Image.new("RGB", (W, H), (128, 0, 0)).save(os.path.join(masks, names[2], "00000.png"))
    expected[names[2]] = os.path.join(masks, names[2], "00000.png") + ": annotation is a RGB image"
    save_palette_png(os.path.join(masks, names[3], "00000.png"), np.ones((H - 8, W), np.uint8))
    expected[names[3]] = (os.path.join(masks, names[3], "00000.png")
                          + f": annotation is {W}x{H - 8} (WxH) but frame")
    with open(os.path.join(frames, names[4], "00002.jpg"), "wb") as f:
        f.write(b"not a jpeg")
    expected[names[4]] = os.path.join(frames, names[4], "00002.jpg") + ": unreadable image"
    for frame in os.listdir(os.path.join(frames, names[5])):
        os.remove(os.path.join(frames, names[5], frame))
    expected[names[5]] = os.path.join(frames, names[5]) + ": no frames"
    save_palette_png(os.path.join(masks, names[6], "00000.png"), np.zeros((H, W), np.uint8))
    expected[names[6]] = os.path.join(masks, names[6], "00000.png") + ": first annotation has no object"
    Image.fromarray(np.arange(H * W, dtype=np.uint16).reshape(H, W) % 300).save(
        os.path.join(masks, names[7], "00000.png"))
    expected[names[7]] = os.path.join(masks, names[7], "00000.png") + ": label ids above 255"
    return names, expected


def test_bad_input_is_reported_per_sequence_and_others_go_on(weights, tmp_path, capsys):
    root = str(tmp_path / "2017" / "trainval")
    names, expected = _broken_davis(root)
    out = str(tmp_path / "out")
    argv = ["--model", weights, "--davis_path", str(tmp_path / "2017"), "--output", out, "--device", "cpu",
            "--no_eval"]
    code, text = run(eval_davis, argv, capsys)
    assert code == 1
    summary = text[text.index(f"FAILED {len(expected)} videos:"):]
    for name, message in expected.items():
        assert f"  {name}: {message}" in summary
    assert len(read_folder(os.path.join(out, names[0]))) == 4
    # failed midway, no temporary files
    assert sorted(os.listdir(os.path.join(out, names[4]))) == [MANIFEST, "00000.png"]

    # Files the manifest of an earlier run lists are removed first when a video is redone (here: planted over
    # them), so failing midway leaves it incomplete.
    for t in range(4):
        save_palette_png(os.path.join(out, names[4], f"{t:05d}.png"), np.zeros((H, W), np.uint8))
    code, text = run(eval_davis, argv + ["--overwrite"], capsys)
    assert code == 1 and sorted(os.listdir(os.path.join(out, names[4]))) == [MANIFEST, "00000.png"]
    code, text = run(eval_davis, argv, capsys)
    assert code == 1
    assert f"{names[0]}: already complete, skipped" in text
    assert f"{names[4]}: FAILED: " in text


def test_setup_errors_exit_with_a_message(weights, davis, tmp_path, capsys):
    root, _ = davis
    code = eval_davis.main(["--model", str(tmp_path / "none.pth"), "--davis_path", root, "--output", str(tmp_path)])
    assert code == 2 and "none.pth: checkpoint file not found" in capsys.readouterr().err
    code = eval_davis.main(["--model", weights, "--davis_path", root, "--output", str(tmp_path), "--split", "testdev"])
    assert code == 2
    assert os.path.join("test-dev", "ImageSets", "2017", "test-dev.txt") + ": sequence list not found" in \
        capsys.readouterr().err
    code = eval_generic.main(["--model", weights, "--data", str(tmp_path / "nothing"), "--output", str(tmp_path)])
    assert code == 2 and "JPEGImages: folder of videos not found" in capsys.readouterr().err
