"""Synthetic clips, a briefly trained tracker and J&F for the interactive demo's tests."""
import hashlib
import os
import time

import cv2
import numpy as np

from dataset.synthetic import make_davis_dataset
from util.davis_metrics import evaluate_sequence
from util.palette import load_annotation

# The tracker: train.py's code path with the quick start's reduced settings, smaller still.
TRACKER_ITERATIONS = 150
TRACKER_SETTINGS = dict(videos=20, frames=12, size=(96, 160), crop=64, batch_size=4, lr=2e-4)


def write_clip(folder, num_frames=12, size=(96, 160), max_objects=2, seed=0, fps=7, name="clip"):
    """<folder>/<name>.mp4 (OpenCV, mp4v) of a synthetic sequence with ``max_objects`` objects (exactly, when
    the generator draws fewer another seed is taken); returns (path, ground truth (T, H, W) uint8,
    path of the first frame's palette PNG)."""
    os.makedirs(folder, exist_ok=True)
    for attempt in range(50):
        root = os.path.join(folder, f"{name}_data")
        sequence = make_davis_dataset(root, num_sequences=1, num_frames=num_frames, size=size,
                                      max_objects=max_objects, seed=seed + 1000 * attempt, splits=("val",),
                                      prefix=name)["val"][0]
        annotations = os.path.join(root, "Annotations", "480p", sequence)
        truth = np.stack([load_annotation(os.path.join(annotations, f"{t:05d}.png")) for t in range(num_frames)])
        if truth[0].max() == max_objects:
            break
    path = os.path.join(folder, f"{name}.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    assert writer.isOpened()
    for t in range(num_frames):
        writer.write(cv2.imread(os.path.join(root, "JPEGImages", "480p", sequence, f"{t:05d}.jpg")))
    writer.release()
    return path, truth, os.path.join(annotations, "00000.png")


def j_and_f(truth, predicted):
    """Mean J&F over the objects (DAVIS: frames 1..T-2)."""
    j, f = evaluate_sequence(np.asarray(truth), np.asarray(predicted))
    return (float(j.mean()) + float(f.mean())) / 2


def tracker_digest():
    """A digest of everything the tracker's weights depend on: the code that trains it, its settings, torch."""
    import torch
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    files = [os.path.join(repo, "train.py"), os.path.abspath(__file__)]
    for package in ("training", "model", "dataset", "util"):
        for folder, _, names in os.walk(os.path.join(repo, package)):
            files += [os.path.join(folder, name) for name in names if name.endswith((".py", ".txt"))]
    digest = hashlib.sha256(repr((TRACKER_ITERATIONS, sorted(TRACKER_SETTINGS.items()), torch.__version__)).encode())
    for path in sorted(files):
        digest.update(os.path.relpath(path, repo).encode())
        with open(path, "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


def train_tracker(folder, iterations=TRACKER_ITERATIONS, seed=0, **overrides):
    """Train a small network (ResNet-18 key encoder, no ImageNet weights, BatchNorm learning, 64-pixel crops,
    batch 4, lr 2e-4: the quick start's recipe at 0.44 of its cost per iteration and half its iterations) on
    synthetic videos with train.py; returns (weights path, seconds). Batch 2 with lr 4e-4 diverged."""
    import train
    settings = {**TRACKER_SETTINGS, **overrides}
    data = os.path.join(folder, "data")
    make_davis_dataset(data, num_sequences=settings["videos"], num_frames=settings["frames"], size=settings["size"],
                       max_objects=2, seed=seed, splits=("train",), prefix="train")
    start = time.perf_counter()
    argv = ["--stage", "3", "--id", "tracker", "--main_data", "davis", "--davis_root", data, "--no_subset",
            "--key_backbone", "resnet18", "--no_pretrained", "--train_bn", "--crop_size", str(settings["crop"]),
            "--batch_size", str(settings["batch_size"]), "--iterations", str(iterations),
            "--steps", str(max(1, int(iterations * 0.8))), "--lr", str(settings["lr"]), "--seed", str(seed),
            "--bootstrap_start", str(iterations // 3), "--bootstrap_end", str(iterations * 5 // 6),
            "--num_workers", "0", "--save_dir", os.path.join(folder, "saves"), "--log_dir", os.path.join(folder, "runs"),
            "--save_every", str(10 * iterations), "--log_every", str(max(1, iterations // 5)), "--device", "cpu"]
    code = train.main(argv)
    assert code == 0, f"training the test tracker failed (exit code {code})"
    return os.path.join(folder, "saves", f"tracker_{iterations}.pth"), time.perf_counter() - start
