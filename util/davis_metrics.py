"""DAVIS semi-supervised evaluation: J (region), F (boundary) and their statistics.

It computes what the official DAVIS 2017 semi-supervised evaluation toolkit
computes (its definitions are the older MATLAB toolkit's): the same J, F and
statistics for the same ground truth and result folders, quirks included:
- 255 (void) in the ground truth counts as background; void pixels are not
  excluded from the scores (the toolkit passes no void mask).
- The first and the last frame are not scored, and, as in the toolkit, only
  the scored frames of a result folder are read.
- Number of objects = largest id in the first ground-truth frame; missing
  objects are scored as empty masks; a predicted id above it is an error.
- Global numbers average over objects, not sequences.
One deliberate difference: the toolkit stores the Decay bin boundaries as
uint8, which breaks sequences with more than 256 scored frames; we keep int64.
"""
import concurrent.futures
import csv
import io
import math
import multiprocessing
import os
from dataclasses import dataclass, field

import cv2
import numpy as np
import progressbar

from util.fileio import atomic_write_text
from util.palette import load_annotation

GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")


class EvaluationError(ValueError):
    """Ground truth, a result folder or a sequence list that cannot be read or scored; the message names
    the file (or sequence) and the problem."""


# ----------------------------------------------------------------------------- per-frame measures


def db_eval_iou(annotation, segmentation, void=None):
    """Jaccard index per frame of boolean masks (H x W or T x H x W); 1 where the union is empty."""
    annotation = np.asarray(annotation).astype(bool)
    segmentation = np.asarray(segmentation).astype(bool)
    if annotation.shape != segmentation.shape:
        raise ValueError(f"mask shapes differ: annotation {annotation.shape}, segmentation {segmentation.shape}")
    keep = True if void is None else ~np.asarray(void).astype(bool)
    inter = np.sum(annotation & segmentation & keep, axis=(-2, -1))
    union = np.sum((annotation | segmentation) & keep, axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def seg2bmap(mask):
    """Boundary map (BSDS): a pixel differs from its east, south or south-east neighbour.

    On the last row only the east neighbour exists, on the last column only
    the south one; the bottom-right pixel is never a boundary. No thinning.
    """
    seg = np.asarray(mask).astype(bool)
    if seg.ndim != 2:
        raise ValueError(f"seg2bmap needs a 2-D mask, got shape {seg.shape}")
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def boundary_radius(shape, bound_th=0.008):
    """Tolerance in pixels: ``bound_th`` of the image diagonal rounded up (a value >= 1 is pixels)."""
    if bound_th >= 1:
        return int(math.ceil(bound_th))
    return int(math.ceil(bound_th * math.hypot(shape[0], shape[1])))


def _disk(radius):
    ys, xs = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (xs * xs + ys * ys <= radius * radius).astype(np.uint8)


def f_measure(foreground_mask, gt_mask, void=None, bound_th=0.008):
    """Boundary F-measure of one predicted mask against one ground-truth mask (2-D)."""
    foreground_mask = np.asarray(foreground_mask).astype(bool)
    gt_mask = np.asarray(gt_mask).astype(bool)
    if foreground_mask.shape != gt_mask.shape or foreground_mask.ndim != 2:
        raise ValueError(f"f_measure needs two 2-D masks of one shape, got {foreground_mask.shape} and "
                         f"{gt_mask.shape}")
    if void is not None:
        keep = ~np.asarray(void).astype(bool)
        foreground_mask, gt_mask = foreground_mask & keep, gt_mask & keep
    disk = _disk(boundary_radius(gt_mask.shape, bound_th))
    fg_boundary = seg2bmap(foreground_mask)
    gt_boundary = seg2bmap(gt_mask)
    n_fg, n_gt = int(fg_boundary.sum()), int(gt_boundary.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0 or n_gt == 0:
        return 0.0  # the toolkit sets (P, R) to (1, 0) or (0, 1): F = 0
    fg_dilated = cv2.dilate(fg_boundary.astype(np.uint8), disk).astype(bool)
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), disk).astype(bool)
    precision = np.sum(fg_boundary & gt_dilated) / n_fg
    recall = np.sum(gt_boundary & fg_dilated) / n_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


def db_eval_boundary(annotation, segmentation, void=None, bound_th=0.008):
    """F per frame for H x W (a float) or T x H x W masks (an array)."""
    annotation, segmentation = np.asarray(annotation), np.asarray(segmentation)
    if annotation.shape != segmentation.shape:
        raise ValueError(f"mask shapes differ: annotation {annotation.shape}, segmentation {segmentation.shape}")
    if annotation.ndim == 2:
        return f_measure(segmentation, annotation, void, bound_th)
    voids = [None] * len(annotation) if void is None else void
    return np.array([f_measure(s, a, v, bound_th) for a, s, v in zip(annotation, segmentation, voids)])


def object_statistics(values):
    """(mean, recall, decay) of one object's per-frame values, as the toolkit's db_statistics.

    Recall counts values > 0.5 (a NaN counts as a miss); Decay is the mean of
    the first of 4 bins minus the mean of the last, the bins overlapping by one
    frame. Bin ids are int64 here (the toolkit's uint8 wraps beyond 256 frames).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D array of per-frame values, got shape {values.shape}")
    mean = float(np.nanmean(values)) if not np.all(np.isnan(values)) else math.nan
    recall = float(np.mean(values > 0.5))
    ids = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.int64)
    bins = [values[ids[i]:ids[i + 1] + 1] for i in range(4)]
    first, last = bins[0], bins[3]
    if np.all(np.isnan(first)) or np.all(np.isnan(last)):
        return mean, recall, math.nan
    return mean, recall, float(np.nanmean(first) - np.nanmean(last))


# ----------------------------------------------------------------------------- sequences


@dataclass
class ObjectScore:
    """Scores of one object of one sequence over its scored frames."""
    name: str  # "<sequence>_<object id>"
    j: np.ndarray  # per scored frame
    f: np.ndarray
    j_stats: tuple  # (mean, recall, decay)
    f_stats: tuple


def score_frames(gt_labels, pred_labels, num_objects, where="sequence"):
    """J and F arrays (num_objects x frames) for label maps that are all scored."""
    gt_labels, pred_labels = np.asarray(gt_labels), np.asarray(pred_labels)
    if gt_labels.shape != pred_labels.shape:
        raise EvaluationError(f"{where}: prediction shape {pred_labels.shape} differs from ground truth "
                            f"{gt_labels.shape}")
    top = int(pred_labels.max()) if pred_labels.size else 0
    if top > num_objects:
        raise EvaluationError(f"{where}: predicted object id {top} but the first ground-truth frame has only "
                            f"{num_objects} object(s)")
    j = np.zeros((num_objects, len(gt_labels)))
    f = np.zeros((num_objects, len(gt_labels)))
    for k in range(num_objects):
        gt_k, pred_k = gt_labels == k + 1, pred_labels == k + 1
        j[k] = db_eval_iou(gt_k, pred_k)
        f[k] = db_eval_boundary(gt_k, pred_k)
    return j, f


def evaluate_sequence(gt_masks, pred_masks):
    """Per-object J and F (objects x T-2) over frames 1..T-2 of T x H x W uint8 label maps.

    255 in the ground truth is background. Returns ``(j, f)``.
    """
    gt_masks, pred_masks = np.asarray(gt_masks), np.asarray(pred_masks)
    if gt_masks.ndim != 3 or len(gt_masks) < 3:
        raise EvaluationError(f"need T x H x W ground truth with T >= 3 (first and last frames are not scored), "
                            f"got shape {gt_masks.shape}")
    gt_masks = np.where(gt_masks == 255, 0, gt_masks)
    num_objects = int(gt_masks[0].max())
    return score_frames(gt_masks[1:-1], pred_masks[1:-1], num_objects)


def _sequence_objects(sequence, j, f):
    return [ObjectScore(f"{sequence}_{k + 1}", j[k], f[k], object_statistics(j[k]), object_statistics(f[k]))
            for k in range(len(j))]


def _score_sequence(davis_root, results_dir, sequence, year):
    """Read and score one sequence; an ``EvaluationError`` names what is wrong."""
    gt_dir = os.path.join(davis_root, "Annotations", "480p", sequence)
    if not os.path.isdir(gt_dir):
        raise EvaluationError(f"{sequence}: ground-truth folder {gt_dir} not found")
    frames = sorted(name[:-4] for name in os.listdir(gt_dir) if name.endswith(".png"))
    if len(frames) < 3:
        raise EvaluationError(f"{sequence}: {len(frames)} ground-truth frames in {gt_dir}; at least 3 are needed "
                            "(first and last are not scored)")
    pred_dir = os.path.join(results_dir, sequence)
    if not os.path.isdir(pred_dir):
        raise EvaluationError(f"{sequence}: result folder {pred_dir} not found")
    gt = np.stack([load_annotation(os.path.join(gt_dir, name + ".png")) for name in frames])
    if year == "2016":
        gt = (gt > 0).astype(np.uint8)  # single object; also reads DAVIS 2016's 0/255 masks
    else:
        gt[gt == 255] = 0
    num_objects = int(gt[0].max())
    preds = []
    for name, gt_frame in zip(frames[1:-1], gt[1:-1]):
        path = os.path.join(pred_dir, name + ".png")
        if not os.path.isfile(path):
            raise EvaluationError(f"{sequence}: missing result frame {path}")
        pred = load_annotation(path)
        if pred.shape != gt_frame.shape:
            raise EvaluationError(f"{sequence}: {path} is {pred.shape[1]}x{pred.shape[0]} (W x H) but the ground "
                                f"truth is {gt_frame.shape[1]}x{gt_frame.shape[0]}")
        if year == "2016":
            pred = (pred > 0).astype(np.uint8)
        elif pred.max() > num_objects:
            raise EvaluationError(f"{sequence}: {path} holds object id {pred.max()} but the first ground-truth "
                                f"frame has only {num_objects} object(s)")
        preds.append(pred)
    j, f = score_frames(gt[1:-1], np.stack(preds), num_objects, where=sequence)
    return _sequence_objects(sequence, j, f)


def _score_or_fail(davis_root, results_dir, sequence, year):
    """Worker entry: (objects, None) or (None, message) so one bad sequence stops nothing."""
    try:
        return _score_sequence(davis_root, results_dir, sequence, year), None
    except (ValueError, OSError) as error:  # EvaluationError, AnnotationError, unreadable files
        message = str(error)
        return None, message if message.startswith(sequence) else f"{sequence}: {message}"


# ----------------------------------------------------------------------------- benchmark


@dataclass
class DavisResult:
    """Scored objects (in sequence-list order) and the sequences that failed."""
    objects: list = field(default_factory=list)
    failures: list = field(default_factory=list)  # (sequence, message)

    @property
    def global_table(self) -> dict:
        if not self.objects:
            return {column: math.nan for column in GLOBAL_COLUMNS}
        j = np.array([o.j_stats for o in self.objects])
        f = np.array([o.f_stats for o in self.objects])
        j_mean, j_recall, j_decay = j.mean(axis=0)
        f_mean, f_recall, f_decay = f.mean(axis=0)
        values = ((j_mean + f_mean) / 2, j_mean, j_recall, j_decay, f_mean, f_recall, f_decay)
        return dict(zip(GLOBAL_COLUMNS, (float(v) for v in values)))

    @property
    def sequence_rows(self) -> list:
        return [(o.name, o.j_stats[0], o.f_stats[0]) for o in self.objects]


def frame_list_sequences(lines, path):
    """Sequence names, each once and in order, of the lines of a DAVIS 2016 frame list
    (``path``): "/JPEGImages/480p/<seq>/<frame>.jpg /Annotations/480p/<seq>/<frame>.png"."""
    names = {}
    for line in lines:
        parts = line.split()[0].strip("/").split("/")
        if len(parts) < 4 or parts[0] != "JPEGImages":
            raise EvaluationError(f"{path}: cannot read line '{line}' (expected /JPEGImages/480p/<seq>/<frame>)")
        names[parts[2]] = None
    return list(names)


def read_sequence_list(davis_root, year="2017", split="val"):
    """Sequence names of a split: ``ImageSets/<year>/<split>.txt`` (one name per
    line), or, for the DAVIS 2016 release, ``ImageSets/480p/<split>.txt`` whose
    lines are "/JPEGImages/480p/<seq>/<frame>.jpg /Annotations/480p/<seq>/<frame>.png"."""
    path = os.path.join(davis_root, "ImageSets", str(year), f"{split}.txt")
    frame_list = os.path.join(davis_root, "ImageSets", "480p", f"{split}.txt")
    if not os.path.isfile(path) and str(year) == "2016" and os.path.isfile(frame_list):
        path = frame_list
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: sequence list not found (is --davis_path the DAVIS root?)") from None
    if path == frame_list:
        lines = frame_list_sequences(lines, path)
    if not lines:
        raise ValueError(f"{path}: the sequence list is empty")
    return lines


def _progress_bar(count, enabled):
    if enabled:
        return progressbar.ProgressBar(max_value=count, prefix="Evaluating ")
    return progressbar.NullBar(max_value=count)


def evaluate_davis(davis_root, results_dir, year="2017", split="val", workers=None, progress=False) -> DavisResult:
    """Score ``results_dir/<seq>/<frame>.png`` against the DAVIS ground truth.

    ``year`` 2016 merges every object of ground truth and prediction into one.
    Sequences are scored in parallel processes; a sequence that cannot be
    scored is recorded in ``failures`` and the others are still scored.
    """
    if str(year) not in ("2016", "2017"):
        raise ValueError(f"year must be 2016 or 2017, got {year!r}")
    year = str(year)
    if not os.path.isdir(results_dir):
        raise FileNotFoundError(f"{results_dir}: results folder not found")
    sequences = read_sequence_list(davis_root, year, split)
    workers = workers or min(4, os.cpu_count() or 1)
    outcomes = {}
    with _progress_bar(len(sequences), progress) as bar:
        if workers == 1:
            for sequence in sequences:
                outcomes[sequence] = _score_or_fail(davis_root, results_dir, sequence, year)
                bar.update(len(outcomes))
        else:
            # spawn: forking a process that holds OpenCV/torch thread pools can deadlock.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(min(workers, len(sequences)), mp_context=context) as pool:
                futures = {pool.submit(_score_or_fail, davis_root, results_dir, s, year): s for s in sequences}
                for future in concurrent.futures.as_completed(futures):
                    outcomes[futures[future]] = future.result()
                    bar.update(len(outcomes))
    result = DavisResult()
    for sequence in sequences:
        objects, message = outcomes[sequence]
        if message is None:
            result.objects.extend(objects)
        else:
            result.failures.append((sequence, message))
    return result


# ----------------------------------------------------------------------------- tables


def _csv_text(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _table_rows(result: DavisResult):
    """(global row, per-object rows) as text with 3 decimals, 0..1 scale."""
    table = result.global_table
    global_row = [f"{table[c]:.3f}" for c in GLOBAL_COLUMNS]
    return global_row, [[name, f"{j:.3f}", f"{f:.3f}"] for name, j, f in result.sequence_rows]


def write_tables(result: DavisResult, results_dir, split="val"):
    """Write the two CSV files of the official toolkit (3 decimals, 0..1 scale); returns their paths."""
    global_path = os.path.join(results_dir, f"global_results-{split}.csv")
    sequence_path = os.path.join(results_dir, f"per-sequence_results-{split}.csv")
    global_row, sequence_rows = _table_rows(result)
    atomic_write_text(global_path, _csv_text(GLOBAL_COLUMNS, [global_row]))
    atomic_write_text(sequence_path, _csv_text(SEQUENCE_COLUMNS, sequence_rows))
    return global_path, sequence_path


def _aligned(header, rows):
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return "\n".join(" ".join(str(cell).rjust(w) for cell, w in zip(line, widths)) for line in [header, *rows])


def format_tables(result: DavisResult, split="val") -> str:
    """Both tables as aligned text, like the toolkit's printout."""
    global_row, sequence_rows = _table_rows(result)
    global_text = _aligned(GLOBAL_COLUMNS, [global_row])
    sequence_text = _aligned(SEQUENCE_COLUMNS, sequence_rows)
    return (f"--------------------------- Global results for {split} ---------------------------\n{global_text}\n\n"
            f"---------- Per sequence results for {split} ----------\n{sequence_text}")
