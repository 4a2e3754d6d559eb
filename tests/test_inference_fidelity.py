"""Inference as the reference runs it: per-benchmark memory sampling, the
YouTube-VOS propagation (per-object memory, schedule restart, double
aggregation), objects on the last frame, and skipped frames.

Expected values are written out from shared/reference/NOTES.md ("Inference"),
not recomputed with the code under test."""
import json
import os
import random

import numpy as np
import pytest
import torch

import eval_youtube
from dataset.synthetic import make_youtube_dataset
from inference_core.backend import TorchBackend
from inference_core.core import InferenceCore
from model.aggregate import soft_aggregate
from tests.helpers_capture import progress_to_current_streams
from tests.helpers_core import run_core
from inference_core.sampler import IsogenousSampler
from util.config import PRESETS as CONFIGS
from util.palette import load_annotation

# NOTES table: top_k, mem_every, sampling when T > threshold, frames drawn (integer
# arithmetic: floor(0.6 T) = 6T // 10), anchors as memory-frame indices.
PRESETS = {
    "davis2017": dict(top_k=4, mem_every=6, threshold=10, drawn=lambda T: 6 * T // 10,
                      anchors=lambda T: [1, T - 5, T - 4, T - 3, T - 2]),
    "davis2016": dict(top_k=12, mem_every=6, threshold=8, drawn=lambda T: T // 10,
                      anchors=lambda T: [0, T - 2]),
    "youtube": dict(top_k=20, mem_every=3, threshold=10, drawn=lambda T: 6 * T // 10,
                    anchors=lambda T: [0, 1, T - 5, T - 4, T - 3, T - 2]),
}
# Worked examples of the NOTES table: frames read when sampling.
READ_COUNTS = {"davis2017": {11: 11, 20: 17}, "davis2016": {9: 2, 20: 4}, "youtube": {20: 18}}


def preset_sampler(name, seed):
    return IsogenousSampler(CONFIGS[name].replace(seed=seed))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_constants_are_the_references(name):
    d, expected = CONFIGS[name], PRESETS[name]
    assert (d.top_k, d.mem_every, d.sample_threshold) == \
        (expected["top_k"], expected["mem_every"], expected["threshold"])
    assert d.procedure == ("youtube" if name == "youtube" else "davis")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_reads_anchors_then_drawn_frames(name):
    expected = PRESETS[name]
    duplicates = 0
    for seed in range(20):
        sampler = preset_sampler(name, seed)
        for T in range(9, 41):
            read = sampler.select(T)
            if T <= expected["threshold"]:
                assert read is None, (T, read)  # the whole memory
                continue
            anchors = expected["anchors"](T)
            assert read[:len(anchors)] == anchors
            drawn = read[len(anchors):]
            assert len(drawn) == expected["drawn"](T)
            assert len(set(drawn)) == len(drawn) and drawn == sorted(drawn)
            assert all(0 <= i <= T - 2 for i in drawn)  # T - 1 is never drawn
            assert T - 1 not in read
            duplicates += len(set(drawn) & set(anchors))
            if T in READ_COUNTS[name]:
                assert len(read) == READ_COUNTS[name][T]
    if name != "davis2016":
        assert duplicates > 0  # an anchor that is also drawn is read twice


def test_threshold_boundary():
    assert preset_sampler("davis2017", 0).select(10) is None
    assert len(preset_sampler("davis2017", 0).select(11)) == 11
    assert preset_sampler("davis2016", 0).select(8) is None
    assert preset_sampler("davis2016", 0).select(9) == [0, 7]


# ----------------------------------------------------------------------------- the inference core


def video(num_frames, height=32, width=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, height, width, generator=g) for _ in range(num_frames)]


def box(height, width, top, left, size, value):
    mask = torch.zeros(height, width, dtype=torch.long)
    mask[top:top + size, left:left + size] = value
    return mask


def youtube_core(network, **overrides):
    return InferenceCore(network, CONFIGS["youtube"].replace(**{"sample_threshold": 100, **overrides}), "cpu")


def test_youtube_schedule_restarts_where_an_object_appears(network):
    core = youtube_core(network)
    frames = video(16)
    run_core(core, frames, {0: (box(32, 48, 2, 2, 10, 1), [1]), 7: (box(32, 48, 18, 30, 10, 2), [2])})
    assert core.memory_frames(1) == [0, 3, 6, 7, 10, 13]
    assert core.memory_frames(2) == [7, 10, 13]


def test_davis_schedule_is_absolute(network):
    core = InferenceCore(network, CONFIGS["davis2017"].replace(sample_threshold=100), "cpu")
    run_core(core, video(14), {0: (box(32, 48, 2, 2, 10, 1), [1])})
    assert core.memory_frames(1) == [0, 6, 12]


class RecordingBackend(TorchBackend):
    """The PyTorch backend, keeping the network's object probabilities of every frame
    (a backend is the core's public seam: inference_core/backend.py)."""

    def __init__(self, network):
        super().__init__(network)
        self.segmented = []

    def segment(self, *args):
        self.segmented.append(super().segment(*args))
        return self.segmented[-1]


def test_youtube_double_aggregation_where_an_object_appears(network):
    backend = RecordingBackend(network)
    core = InferenceCore(backend, youtube_core(network).config, "cpu")
    frames = video(10)
    first = box(32, 48, 2, 2, 12, 1)
    first[20:30, 2:14] = 2
    late = box(32, 48, 16, 26, 12, 3)
    probs = run_core(core, frames, {0: (first, [1, 2]), 7: (late, [3])})
    raw = {t: backend.segmented[t - 1] for t in range(1, 10)}  # frame 0 gives the objects: nothing segmented
    new = (late == 3).float()
    known = soft_aggregate(raw[7][None])[0, 1:] * (1 - new)
    expected = soft_aggregate(torch.cat([known, new[None]])[None])[0]
    torch.testing.assert_close(probs[7], expected, atol=1e-6, rtol=0)
    once = soft_aggregate(torch.cat([raw[7] * (1 - new), new[None]])[None])[0]
    assert (probs[7] - once).abs().max() > 1e-3  # the second aggregation matters


def test_object_given_on_the_last_frame(network):
    for procedure in ("youtube", "davis"):
        core = youtube_core(network, procedure=procedure)
        frames = video(6)
        last = box(32, 48, 16, 26, 8, 2)
        probs = run_core(core, frames, {0: (box(32, 48, 2, 2, 10, 1), [1]), 5: (last, [2])})
        labels = probs[5].argmax(0)
        assert torch.equal(labels == 2, last == 2)
        assert core.memory_frames(2) == []  # no next frame: nothing to encode it with


def test_skipping_frames_changes_no_output(network):
    """Skipped frames draw nothing (as the reference), so the random stream is consumed
    differently than with every frame processed; with fraction 1 the draw is fixed
    (all but the newest frame) while the sampled top-k path with anchors still runs."""
    config = dict(mem_every=3, sample_threshold=3, sample_fraction=1.0, anchors=(0, -2), seed=1)
    frames = video(20)
    given = {0: (box(32, 48, 2, 2, 10, 1), [1]), 4: (box(32, 48, 18, 30, 10, 2), [2])}
    outputs = {0, 4, 5, 10, 15, 19}
    full = run_core(youtube_core(network, **config), frames, given)
    core = youtube_core(network, **config)
    sparse = run_core(core, frames, given, outputs)
    assert outputs <= set(sparse) and len(sparse) < len(full)
    assert core.processed == len(sparse)
    for t in outputs:
        torch.testing.assert_close(sparse[t], full[t], atol=1e-6, rtol=0)


def test_youtube_draws_one_per_object_in_id_order(network):
    """Objects of one group read different frames, drawn in id order from one stream."""
    config = dict(mem_every=1, sample_threshold=3, sample_fraction=0.5, anchors=(0,), seed=3)
    core = youtube_core(network, **config)
    first = box(32, 48, 2, 2, 10, 1)
    first[20:30, 30:40] = 2
    run_core(core, video(9), {0: (first, [1, 2])})
    reference = random.Random(3)
    for T in range(4, 9):  # memory sizes seen by frames 4..8
        draws = [[0] + sorted(reference.sample(range(T - 1), int(T * 0.5))) for _ in (1, 2)]
    assert [core.memory_state(o).last_read for o in (1, 2)] == draws


# ----------------------------------------------------------------------------- the YouTube-VOS script


def test_output_all_and_default_agree_and_default_processes_fewer(weights, cached_network, tmp_path, capsys):
    root = tmp_path / "yv"
    names = make_youtube_dataset(root, num_videos=1, num_frames=16, size=(32, 48), max_objects=2,
                                 frame_step=1, seed=3)
    meta_path = root / "valid" / "meta.json"
    meta = json.loads(meta_path.read_text())
    for entry in meta["videos"][names[0]]["objects"].values():  # scored: every 5th frame, as YouTube-VOS
        entry["frames"] = [f for i, f in enumerate(entry["frames"]) if i == 0 or int(f) % 5 == 0]
    meta_path.write_text(json.dumps(meta))
    results = {}
    for flag in ([], ["--output_all"]):
        out = tmp_path / ("all" if flag else "sparse")
        with progress_to_current_streams():
            code = eval_youtube.main(["--model", weights, "--yv_path", str(root), "--output", str(out),
                                      "--device", "cpu", *flag])
        text = capsys.readouterr().out
        assert code == 0, text
        folder = out / "Annotations" / names[0]
        results[bool(flag)] = ({f: load_annotation(os.path.join(folder, f)) for f in os.listdir(folder)
                               if f.endswith(".png")}, text)
    (sparse, sparse_text), (full, full_text) = results[False], results[True]
    assert len(full) == 16 and set(sparse) < set(full)
    for name, labels in sparse.items():
        np.testing.assert_array_equal(labels, full[name])
    assert "16 frames (16 processed)" in full_text
    processed = int(sparse_text.split("16 frames (")[1].split(" processed")[0])
    assert processed < 16
