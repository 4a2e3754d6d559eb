"""Bad and hostile input to the evaluation scripts (issue 12, items 2, 3, 8, 9 and 10),
each written as the failing input: real folders from dataset/synthetic.py, the
script's main(), then the exit code, the one-line message naming the file and
the file system afterwards (no input removed, nothing written outside --output).
"""
import json
import os
import shutil

import numpy as np
import pytest

import eval_davis
import eval_davis_2016
import eval_generic
import eval_youtube
from dataset.synthetic import make_davis_dataset, make_youtube_dataset
from util.output_guard import MANIFEST
from tests.helpers_capture import progress_to_current_streams
from tests.helpers_files import read_tree
from util.palette import save_palette_png

H, W = 48, 64


pytestmark = pytest.mark.usefixtures("cached_network")


@pytest.fixture(scope="module")
def davis_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis_source")
    names = make_davis_dataset(root / "2017" / "trainval", num_sequences=2, num_frames=3, size=(H, W),
                               splits=("val",))["val"]
    return root, names


@pytest.fixture
def davis(davis_source, tmp_path):
    """A fresh copy: (DAVIS 2017 root, trainval folder, sequence names)."""
    source, names = davis_source
    shutil.copytree(source / "2017", tmp_path / "2017")
    return str(tmp_path / "2017"), str(tmp_path / "2017" / "trainval"), names


@pytest.fixture(scope="module")
def youtube_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("youtube_source")
    names = make_youtube_dataset(root / "yv", num_videos=1, num_frames=3, size=(H, W), max_objects=2)
    return root, names


@pytest.fixture
def youtube(youtube_source, tmp_path):
    """A fresh copy: (YouTube-VOS root, video names)."""
    source, names = youtube_source
    shutil.copytree(source / "yv", tmp_path / "yv")
    return str(tmp_path / "yv"), names


def run(script, argv, capsys):
    """A script's main(); returns (exit code, stdout, stderr)."""
    with progress_to_current_streams():
        code = script.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err




def error_line(err, *needles):
    """The one stderr line holding every needle; fails unless exactly one line does."""
    lines = [line for line in err.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, (needles, err)
    return lines[0]


# ----------------------------------------------------------------------------- item 2: output overlaps the input


def overlap_cases(tmp, weights, davis_root, trainval, yv_root, video):
    """(script, argv, output, input folder the message must name) for each way to aim --output at the input."""
    yv_valid = os.path.join(yv_root, "valid")
    frames = os.path.join(yv_valid, "JPEGImages", video)
    masks = os.path.join(yv_valid, "Annotations", video)
    link = os.path.join(tmp, "link_to_gt")
    os.symlink(os.path.join(trainval, "Annotations", "480p"), link)
    common = ["--model", weights, "--device", "cpu"]
    davis_args = common + ["--davis_path", davis_root, "--no_eval", "--overwrite"]
    return [
        (eval_youtube, common + ["--yv_path", yv_root, "--output", yv_valid], yv_valid,
         os.path.join(yv_valid, "Annotations")),
        (eval_youtube, common + ["--yv_path", yv_root, "--output", os.path.join(yv_valid, "Annotations"),
                                 "--overwrite"], None, os.path.join(yv_valid, "Annotations")),
        (eval_generic, common + ["--data", yv_valid, "--output", os.path.join(yv_valid, "Annotations")], None,
         os.path.join(yv_valid, "Annotations")),
        (eval_generic, common + ["--frames", frames, "--masks", masks, "--output", os.path.join(yv_valid, "JPEGImages"),
                                 "--overwrite"], None, frames),
        (eval_davis, davis_args + ["--output", os.path.join(trainval, "Annotations", "480p")], None,
         os.path.join(trainval, "Annotations", "480p")),
        (eval_davis, davis_args + ["--output", os.path.join(trainval, "JPEGImages", "480p", "new")], None,
         os.path.join(trainval, "JPEGImages", "480p")),
        (eval_davis_2016, davis_args[:-1] + ["--davis_path", trainval, "--output", link], link,
         os.path.join(trainval, "Annotations", "480p")),
    ]


def test_an_output_overlapping_the_input_is_refused_and_nothing_is_touched(weights, davis, youtube, tmp_path,
                                                                            capsys):
    davis_root, trainval, _ = davis
    yv_root, videos = youtube
    cases = overlap_cases(str(tmp_path), weights, davis_root, trainval, yv_root, videos[0])
    before = read_tree(tmp_path)
    for script, argv, output, folder in cases:
        output = output or argv[argv.index("--output") + 1]
        code, out, err = run(script, argv, capsys)
        assert code == 2, (argv, out, err)
        error_line(err, f"--output {output} overlaps the input folder {folder}")
        assert "already complete" not in out and "FAILED" not in out
        assert read_tree(tmp_path) == before, argv  # nothing removed, nothing written
    assert not os.path.exists(os.path.join(trainval, "JPEGImages", "480p", "new"))


def test_result_files_this_tool_did_not_write_are_kept_and_not_taken_for_results(weights, davis, tmp_path, capsys):
    davis_root, trainval, names = davis
    out = tmp_path / "out"
    argv = ["--model", weights, "--davis_path", davis_root, "--output", str(out), "--device", "cpu", "--no_eval"]
    # Files with result names, no manifest: an earlier tool, or the user's own files.
    foreign = out / names[0] / "00000.png"
    for t in range(3):
        save_palette_png(out / names[0] / f"{t:05d}.png", np.full((H, W), 7, np.uint8))
    # A symlink in the output folder that leads into the input.
    os.symlink(os.path.join(trainval, "Annotations", "480p", names[1]), out / names[1])
    inputs = read_tree(trainval)
    planted = read_tree(out / names[0])
    for extra in ([], ["--overwrite"]):
        code, text, _ = run(eval_davis, argv + extra, capsys)
        assert code == 1, text
        assert "already complete" not in text
        error_line(text, f"{names[0]}: FAILED: {foreign}: exists but was not written by this tool")
        error_line(text, f"{names[1]}: FAILED: result folder of {names[1]} {out / names[1]} overlaps the input "
                         f"folder {os.path.join(trainval, 'Annotations', '480p', names[1])}")
        assert read_tree(out / names[0]) == planted
        assert read_tree(trainval) == inputs

    # Once the user's files are gone, the video runs, records a manifest and is skipped next time.
    shutil.rmtree(out / names[0])
    os.remove(out / names[1])
    code, text, _ = run(eval_davis, argv, capsys)
    assert code == 0, text
    manifest = json.loads((out / names[0] / MANIFEST).read_text())
    assert manifest["complete"] is True and manifest["files"] == ["00000.png", "00001.png", "00002.png"]
    code, text, _ = run(eval_davis, argv, capsys)
    assert code == 0 and f"{names[0]}: already complete, skipped" in text
    # A result removed by hand makes the video incomplete; a redo keeps files that are not results.
    os.remove(out / names[0] / "00002.png")
    (out / names[0] / "notes.txt").write_text("mine")
    code, text, _ = run(eval_davis, argv, capsys)
    assert code == 0 and f"{names[0]}: already complete" not in text
    assert sorted(os.listdir(out / names[0])) == [MANIFEST, "00000.png", "00001.png", "00002.png", "notes.txt"]
    assert read_tree(trainval) == inputs

    # A manifest that lists a path outside its folder is refused, not followed.
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / names[0] / MANIFEST).write_text(json.dumps(
        {"tool": "IMSFR evaluation", "complete": False, "files": ["../../victim.txt", "00000.png"]}))
    code, text, _ = run(eval_davis, argv + ["--overwrite"], capsys)
    assert code == 1
    error_line(text, f"{names[0]}: FAILED: {out / names[0] / MANIFEST}: not a results manifest of this tool")
    assert victim.read_text() == "keep" and (out / names[0] / "00000.png").is_file()


# ----------------------------------------------------------------------------- item 3: names that are paths


@pytest.mark.parametrize("bad", ["../../x", "/tmp/imsfr_absolute_x", "..", ".", "a/b"])
def test_davis_list_names_that_are_paths_are_refused(bad, weights, davis, tmp_path, capsys):
    davis_root, trainval, names = davis
    listing = os.path.join(trainval, "ImageSets", "2017", "val.txt")
    with open(listing, "w") as f:
        f.write(f"{names[0]}\n\n{bad}\n")
    out = tmp_path / "nest" / "out"
    before = read_tree(tmp_path)
    code, _, err = run(eval_davis, ["--model", weights, "--davis_path", davis_root, "--output", str(out),
                                    "--device", "cpu", "--overwrite"], capsys)
    assert code == 2
    error_line(err, f"{listing}: line 3: {bad!r} is not a video name")
    assert read_tree(tmp_path) == before and not out.exists()
    assert not os.path.exists("/tmp/imsfr_absolute_x")


def test_davis_2016_frame_list_and_other_names_that_are_paths_are_refused(weights, davis, youtube, tmp_path,
                                                                          capsys):
    _, trainval, names = davis
    os.remove(os.path.join(trainval, "ImageSets", "2016", "val.txt"))
    listing = os.path.join(trainval, "ImageSets", "480p", "val.txt")
    os.makedirs(os.path.dirname(listing))
    with open(listing, "w") as f:
        f.write(f"/JPEGImages/480p/{names[0]}/00000.jpg /Annotations/480p/{names[0]}/00000.png\n"
                "/JPEGImages/480p/../00000.jpg /Annotations/480p/../00000.png\n")
    out = tmp_path / "out"
    code, _, err = run(eval_davis_2016, ["--model", weights, "--davis_path", trainval, "--output", str(out),
                                         "--device", "cpu"], capsys)
    assert code == 2
    error_line(err, f"{listing}: line 2: '..' is not a video name")

    yv_root, _ = youtube
    meta_path = os.path.join(yv_root, "valid", "meta.json")
    meta = json.load(open(meta_path))
    meta["videos"]["../escape"] = {"objects": {}}
    with open(meta_path, "w") as f:
        json.dump(meta, f)
    code, _, err = run(eval_youtube, ["--model", weights, "--yv_path", yv_root, "--output", str(out)], capsys)
    assert code == 2
    error_line(err, f"{meta_path}: field \"videos\": '../escape' is not a video name")

    code, _, err = run(eval_generic, ["--model", weights, "--frames", "/", "--masks", str(tmp_path),
                                      "--output", str(out)], capsys)
    assert code == 2
    error_line(err, "--frames /: the video name (the folder's name): '' is not a video name")
    assert not out.exists()


# ----------------------------------------------------------------------------- item 8: DAVIS frame numbering


def test_davis_video_with_a_missing_frame_fails_instead_of_starting_later(weights, davis, tmp_path, capsys):
    davis_root, trainval, names = davis
    frames = os.path.join(trainval, "JPEGImages", "480p")
    os.remove(os.path.join(frames, names[0], "00000.jpg"))  # 00000.png (ground truth) stays
    os.remove(os.path.join(frames, names[1], "00001.jpg"))
    out = tmp_path / "out"
    code, text, _ = run(eval_davis, ["--model", weights, "--davis_path", davis_root, "--output", str(out),
                                     "--device", "cpu", "--eval_workers", "1"], capsys)
    assert code == 1
    summary = text[text.index("FAILED 2 videos:"):]
    error_line(summary, f"  {names[0]}: {os.path.join(frames, names[0], '00000.jpg')}: frame not found",
               "the next frame file is 00001.jpg")
    error_line(summary, f"  {names[1]}: {os.path.join(frames, names[1], '00001.jpg')}: frame not found")
    assert not (out / names[0]).exists() and not (out / names[1]).exists()  # nothing written, nothing scored
    assert "J&F-Mean" not in text


# ----------------------------------------------------------------------------- item 9: unwritable archive


def test_youtube_archive_that_cannot_be_written_is_reported_in_one_line(weights, youtube, tmp_path, capsys):
    yv_root, videos = youtube
    out = tmp_path / "results" / "yv"
    blocker = tmp_path / "results" / "yv.zip"  # a folder where the archive must go
    blocker.mkdir(parents=True)
    (blocker / "kept").write_text("x")
    code, text, err = run(eval_youtube, ["--model", weights, "--yv_path", yv_root, "--output", str(out),
                                         "--device", "cpu"], capsys)
    assert code == 1, (text, err)
    assert "Traceback" not in err
    error_line(err, f"error: could not write the archive {blocker} (",
               f"the results are in {out / 'Annotations'}")
    pngs = [f for f in os.listdir(out / "Annotations" / videos[0]) if f.endswith(".png")]
    assert len(pngs) == 3  # the results survive
    assert sorted(os.listdir(tmp_path / "results")) == ["yv", "yv.zip"]  # no temporary archive left
    assert os.listdir(blocker) == ["kept"]


# ----------------------------------------------------------------------------- item 10: malformed meta.json


@pytest.mark.parametrize("meta, field", [
    ([], "field (top level) must be an object"),
    ({"video": {}}, 'field "videos" is missing'),
    ({"videos": []}, 'field "videos" must be an object (video name -> entry), got an array'),
    ({"videos": {"v1": None}}, 'field "videos.v1" must be an object with the field "objects", got null'),
    ({"videos": {"v1": {"objects": [1]}}}, 'field "videos.v1.objects" must be an object'),
    ({"videos": {"v1": {"objects": {"one": {"frames": []}}}}}, 'field "videos.v1.objects.one": object id must be'),
    ({"videos": {"v1": {"objects": {"1": None}}}}, 'field "videos.v1.objects.1" must be an object'),
    ({"videos": {"v1": {"objects": {"1": {"frames": "00000"}}}}},
     'field "videos.v1.objects.1.frames" must be an array of frame names, got a string'),
    ({"videos": {"v1": {"objects": {"1": {"frames": [0]}}}}}, 'field "videos.v1.objects.1.frames" must be an array'),
    ("directory", "cannot read meta.json (Is a directory)"),
])
def test_malformed_meta_json_names_the_file_and_field(meta, field, weights, youtube, tmp_path, capsys):
    yv_root, _ = youtube
    meta_path = os.path.join(yv_root, "valid", "meta.json")
    os.remove(meta_path)
    if meta == "directory":
        os.mkdir(meta_path)
    else:
        with open(meta_path, "w") as f:
            json.dump(meta, f)
    before = read_tree(yv_root)
    out = tmp_path / "out"
    code, text, err = run(eval_youtube, ["--model", weights, "--yv_path", yv_root, "--output", str(out),
                                         "--device", "cpu"], capsys)
    assert code == 2, (text, err)
    assert "Traceback" not in err
    error_line(err, f"error: {meta_path}: {field}")
    assert not out.exists() and read_tree(yv_root) == before
