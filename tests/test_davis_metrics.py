"""DAVIS J/F metrics against hand-computed values, and the evaluator end to end."""
import csv
import os
import shutil

import numpy as np
import pytest

from dataset.synthetic import make_davis_dataset
from scripts import evaluate_davis as evaluate_script
from util.davis_metrics import (EvaluationError, boundary_radius, db_eval_boundary, db_eval_iou, evaluate_davis,
                                evaluate_sequence, f_measure, format_tables, object_statistics, seg2bmap,
                                write_tables)
from util.palette import load_annotation, save_palette_png


def pixel(shape, y, x):
    mask = np.zeros(shape, dtype=bool)
    mask[y, x] = True
    return mask


# ----------------------------------------------------------------------------- J


def test_iou_identical_disjoint_and_shifted_rectangle():
    gt = np.zeros((20, 20), bool)
    gt[2:12, 2:12] = True  # 10 x 10
    shifted = np.roll(gt, 3, axis=1)  # overlap 10 x 7 = 70, union 130
    far = np.zeros_like(gt)
    far[15:18, 15:18] = True
    assert db_eval_iou(gt, gt) == 1.0
    assert db_eval_iou(gt, far) == 0.0
    assert db_eval_iou(gt, shifted) == pytest.approx(70 / 130)


def test_iou_empty_cases_and_per_frame_arrays():
    empty = np.zeros((2, 6, 6), bool)
    full = np.ones((2, 6, 6), bool)
    np.testing.assert_array_equal(db_eval_iou(empty, empty), [1.0, 1.0])
    np.testing.assert_array_equal(db_eval_iou(full, empty), [0.0, 0.0])
    np.testing.assert_array_equal(db_eval_iou(empty, full), [0.0, 0.0])
    void = np.zeros((6, 6), bool)
    void[:, 3:] = True  # half the frame ignored: 18 of 18 remaining pixels agree
    assert db_eval_iou(full[0], np.pad(np.ones((6, 3), bool), ((0, 0), (0, 3))), void) == 1.0
    with pytest.raises(ValueError, match="shapes differ"):
        db_eval_iou(empty, empty[0])


# ----------------------------------------------------------------------------- F


def test_seg2bmap_uses_east_south_and_south_east_neighbours():
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:4] = True
    expected = np.zeros((5, 6), bool)
    expected[0, 1:4] = True  # above (south / south-east neighbour inside)
    expected[1:3, 1] = True  # left (east neighbour inside)
    expected[1:3, 3] = True  # right column of the square (east neighbour outside)
    expected[2, 2] = True  # bottom row of the square
    np.testing.assert_array_equal(seg2bmap(mask), expected)
    # Last row compares only east, last column only south; the corner is never a boundary.
    full = np.ones((3, 3), bool)
    np.testing.assert_array_equal(seg2bmap(full), np.zeros((3, 3), bool))
    corner = pixel((3, 3), 2, 2)
    np.testing.assert_array_equal(seg2bmap(corner), [[0, 0, 0], [0, 1, 1], [0, 1, 0]])


def test_boundary_radius_is_ceil_of_diagonal_fraction():
    assert boundary_radius((480, 854)) == 8
    assert boundary_radius((10, 10)) == 1  # 0.008 * 14.1 = 0.11
    assert boundary_radius((100, 100)) == 2  # 0.008 * 141.4 = 1.13
    assert boundary_radius((100, 100), bound_th=3) == 3


def test_f_measure_hand_computed_radius_one():
    # A single pixel's boundary is the 2x2 block at its top-left; at 10x10 the tolerance is the 4-neighbour cross.
    gt = pixel((10, 10), 4, 4)  # boundary rows 3-4, cols 3-4
    assert f_measure(gt, gt) == 1.0
    assert f_measure(pixel((10, 10), 4, 5), gt) == 1.0  # one pixel off: within r
    assert f_measure(pixel((10, 10), 4, 6), gt) == pytest.approx(0.5)  # half of each boundary matches
    assert f_measure(pixel((10, 10), 4, 7), gt) == 0.0  # beyond r
    bar = pixel((10, 10), 4, 4) | pixel((10, 10), 4, 5)  # boundary rows 3-4, cols 3-5 (6 pixels)
    # precision 2/4, recall 2/6 -> F = 2 * (1/2 * 1/3) / (1/2 + 1/3) = 0.4
    assert f_measure(pixel((10, 10), 4, 7), bar) == pytest.approx(0.4)


def test_f_measure_radius_two_uses_the_discrete_disk():
    gt = pixel((100, 100), 50, 50)
    assert f_measure(pixel((100, 100), 50, 52), gt) == 1.0
    assert f_measure(pixel((100, 100), 50, 53), gt) == pytest.approx(0.5)
    # (2, 1) lies outside the disk x^2 + y^2 <= 4: a diagonal shift of (2, 2) leaves one corner matched each way.
    assert f_measure(pixel((100, 100), 52, 52), gt) == pytest.approx(0.25)


def test_f_measure_empty_cases():
    empty = np.zeros((10, 10), bool)
    gt = pixel((10, 10), 4, 4)
    assert f_measure(empty, empty) == 1.0
    assert f_measure(empty, gt) == 0.0
    assert f_measure(gt, empty) == 0.0
    np.testing.assert_array_equal(db_eval_boundary(np.stack([gt, empty]), np.stack([gt, gt])), [1.0, 0.0])


# ----------------------------------------------------------------------------- statistics


def test_object_statistics_bins_by_hand():
    # n = 10: ids = round([1, 3.25, 5.5, 7.75, 10] + 1e-10) - 1 = [0, 2, 5, 7, 9]; first bin [0:3], last [7:10].
    values = [1, 1, 1, 0.8, 0.8, 0.6, 0.6, 0.4, 0.4, 0.2]
    mean, recall, decay = object_statistics(values)
    assert mean == pytest.approx(0.68)
    assert recall == pytest.approx(0.7)
    assert decay == pytest.approx(1 - (0.4 + 0.4 + 0.2) / 3)
    assert object_statistics([0.5, 0.5, 0.5, 0.5])[1] == 0.0  # recall needs > 0.5


def test_object_statistics_nan_and_long_sequences():
    # n = 4: ids = [0, 1, 2, 2, 3]; first bin [1, nan], last bin [0.2, 1]; a NaN is not a recall hit.
    mean, recall, decay = object_statistics([1.0, np.nan, 0.2, 1.0])
    assert (mean, recall, decay) == pytest.approx((2.2 / 3, 0.5, 1 - 0.6))
    # n = 300: ids = [0, 75, 150, 224, 299]; the toolkit's uint8 ids would wrap 299 to 43 (empty last bin).
    values = np.zeros(300)
    values[:76] = 1
    assert object_statistics(values)[2] == 1.0
    with pytest.raises(ValueError):
        object_statistics([])


# ----------------------------------------------------------------------------- sequences


def square_video(num_frames=5, shape=(12, 12)):
    video = np.zeros((num_frames,) + shape, np.uint8)
    video[:, 2:6, 2:6] = 1
    video[:, 7:10, 7:10] = 2
    return video


def test_evaluate_sequence_skips_first_and_last_frame():
    gt = square_video()
    pred = gt.copy()
    pred[0] = 0  # not scored
    pred[4] = 0  # not scored
    pred[2][pred[2] == 2] = 0  # object 2 missed in frame 2
    j, f = evaluate_sequence(gt, pred)
    np.testing.assert_array_equal(j, [[1, 1, 1], [1, 0, 1]])
    np.testing.assert_array_equal(f, [[1, 1, 1], [1, 0, 1]])


def test_evaluate_sequence_void_objects_and_errors():
    gt = square_video()
    gt[:, 0, :] = 255  # void counts as background
    pred = (gt == 1).astype(np.uint8)  # object 2 never predicted: scored as empty
    j, _ = evaluate_sequence(gt, pred)
    np.testing.assert_array_equal(j, [[1, 1, 1], [0, 0, 0]])
    gt_gap = np.where(gt == 2, 3, gt).astype(np.uint8)  # ids 1 and 3: object 2 is empty, scores 1
    j, f = evaluate_sequence(gt_gap, np.where(gt == 255, 0, gt_gap))
    np.testing.assert_array_equal(j, np.ones((3, 3)))
    np.testing.assert_array_equal(f, np.ones((3, 3)))
    too_many = square_video()
    too_many[2, 0, 0] = 3
    with pytest.raises(EvaluationError, match="predicted object id 3"):
        evaluate_sequence(square_video(), too_many)
    with pytest.raises(EvaluationError, match="T >= 3"):
        evaluate_sequence(gt[:2], gt[:2])


# ----------------------------------------------------------------------------- benchmark


@pytest.fixture(scope="module")
def davis_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    make_davis_dataset(root, num_sequences=3, num_frames=5, size=(32, 48), max_objects=3, seed=3,
                       splits=("val",))
    return root


def copy_gt(davis_root, results):
    shutil.copytree(os.path.join(davis_root, "Annotations", "480p"), results)
    return results


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_gt_as_results_scores_one_exactly(davis_root, tmp_path):
    results = copy_gt(davis_root, tmp_path / "res")
    result = evaluate_davis(davis_root, results, workers=2)
    assert result.failures == []
    assert result.global_table == {"J&F-Mean": 1.0, "J-Mean": 1.0, "J-Recall": 1.0, "J-Decay": 0.0,
                                   "F-Mean": 1.0, "F-Recall": 1.0, "F-Decay": 0.0}
    names = [row[0] for row in result.sequence_rows]
    assert names[0] == "seq_val_000_1" and len(names) == len(set(names))
    assert len(names) == sum(load_annotation(os.path.join(davis_root, "Annotations", "480p", seq,
                                                          "00000.png")).max() for seq in
                             ("seq_val_000", "seq_val_001", "seq_val_002"))


def test_missing_frame_fails_one_sequence_and_scores_the_rest(davis_root, tmp_path, capsys):
    results = copy_gt(davis_root, tmp_path / "res")
    os.remove(results / "seq_val_001" / "00002.png")
    code = evaluate_script.main(["--davis_path", str(davis_root), "--results", str(results), "--workers", "1"])
    assert code == 1
    err = capsys.readouterr().err
    assert "seq_val_001" in err and "00002.png" in err
    global_rows = read_csv(results / "global_results-val.csv")
    assert global_rows[0] == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    assert global_rows[1] == ["1.000", "1.000", "1.000", "0.000", "1.000", "1.000", "0.000"]
    sequence_rows = read_csv(results / "per-sequence_results-val.csv")
    assert sequence_rows[0] == ["Sequence", "J-Mean", "F-Mean"]
    scored = {row[0].rsplit("_", 1)[0] for row in sequence_rows[1:]}
    assert scored == {"seq_val_000", "seq_val_002"}


def test_bad_results_are_reported_per_sequence(davis_root, tmp_path):
    results = copy_gt(davis_root, tmp_path / "res")
    shutil.rmtree(results / "seq_val_000")
    save_palette_png(results / "seq_val_001" / "00001.png", np.zeros((10, 10), np.uint8))
    save_palette_png(results / "seq_val_002" / "00003.png", np.full((32, 48), 9, np.uint8))
    result = evaluate_davis(davis_root, results, workers=1)
    assert result.objects == []
    messages = dict(result.failures)
    assert "result folder" in messages["seq_val_000"]
    assert "00001.png" in messages["seq_val_001"] and "10x10" in messages["seq_val_001"]
    assert "00003.png holds object id 9" in messages["seq_val_002"]


def test_year_2016_merges_objects(davis_root, tmp_path):
    results = copy_gt(davis_root, tmp_path / "res")
    for png in results.glob("*/*.png"):  # every object predicted with id 1
        save_palette_png(png, (load_annotation(png) > 0).astype(np.uint8))
    assert max(load_annotation(png).max() for png in davis_root.glob("Annotations/480p/*/00000.png")) > 1
    merged = evaluate_davis(davis_root, results, year="2016", workers=1)
    assert [row[0] for row in merged.sequence_rows] == ["seq_val_000_1", "seq_val_001_1", "seq_val_002_1"]
    assert merged.global_table["J&F-Mean"] == 1.0
    per_object = evaluate_davis(davis_root, results, year="2017", workers=1)
    assert per_object.global_table["J&F-Mean"] < 1.0  # objects 2, 3 now missed


def test_write_and_format_tables(davis_root, tmp_path):
    results = copy_gt(davis_root, tmp_path / "res")
    result = evaluate_davis(davis_root, results, workers=1)
    global_path, sequence_path = write_tables(result, results, "val")
    assert os.path.basename(global_path) == "global_results-val.csv"
    assert len(read_csv(sequence_path)) == 1 + len(result.objects)
    text = format_tables(result, "val")
    assert "J&F-Mean" in text and "seq_val_002_1" in text


def test_missing_sequence_list_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "res").mkdir()
    code = evaluate_script.main(["--davis_path", str(tmp_path), "--results", str(tmp_path / "res")])
    assert code == 2
    assert "ImageSets/2017/val.txt" in capsys.readouterr().err


def test_davis2016_frame_list_gives_the_sequences(tmp_path):
    from util.davis_metrics import read_sequence_list
    (tmp_path / "ImageSets" / "480p").mkdir(parents=True)
    (tmp_path / "ImageSets" / "480p" / "val.txt").write_text(
        "/JPEGImages/480p/blackswan/00000.jpg /Annotations/480p/blackswan/00000.png\n"
        "/JPEGImages/480p/blackswan/00001.jpg /Annotations/480p/blackswan/00001.png\n"
        "/JPEGImages/480p/cows/00000.jpg /Annotations/480p/cows/00000.png\n")
    assert read_sequence_list(tmp_path, "2016", "val") == ["blackswan", "cows"]
    (tmp_path / "ImageSets" / "480p" / "val.txt").write_text("blackswan\n")
    with pytest.raises(EvaluationError, match=r"val\.txt: cannot read line 'blackswan'"):
        read_sequence_list(tmp_path, "2016", "val")
