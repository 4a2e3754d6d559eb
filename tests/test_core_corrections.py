"""Corrections in the inference core (issue 19, item 5): a mask given at frame t for known
objects replaces their prediction there and is memorised by their groups; without
corrections nothing changes."""
import pytest
import torch

from inference_core.core import InferenceCore
from tests.helpers_core import run_core
from tests.test_inference_core import video
from util.config import PRESETS


def correction(height=45, width=61):
    """A mask of object 1 elsewhere than in ``video``'s first frame."""
    fixed = torch.zeros(height, width, dtype=torch.long)
    fixed[10:30, 10:30] = 1
    return fixed


@pytest.mark.parametrize("preset", ["generic", "davis2017"])
def test_no_correction_changes_nothing(network, preset):
    frames, mask = video(8)
    core = InferenceCore(network, PRESETS[preset].replace(mem_every=3), "cpu")
    plain = run_core(core, frames, {0: (mask, [1, 2])})
    empty = run_core(core, frames, {0: (mask, [1, 2], [])})
    assert plain.keys() == empty.keys()
    for t in plain:
        assert torch.equal(plain[t], empty[t])


@pytest.mark.parametrize("preset", ["generic", "davis2017"])
def test_corrected_frame_replaces_the_prediction_and_is_memorised(network, preset):
    frames, mask = video(10)
    fixed = correction()
    config = PRESETS[preset].replace(mem_every=4, memory_budget=None)
    core = InferenceCore(network, config, "cpu")
    before = run_core(core, frames, {0: (mask, [1, 2])})
    memory_before = core.memory_frames(1)
    after = run_core(core, frames, {0: (mask, [1, 2]), 5: (fixed, [], [1])})
    for t in range(5):  # frames before the correction: unchanged
        assert torch.equal(before[t], after[t])
    labels = after[5].argmax(0)
    assert torch.equal(labels == 1, fixed == 1)          # object 1 is exactly the corrected mask
    assert not ((labels == 2) & (fixed == 1)).any()      # its pixels are its alone
    assert not torch.equal(before[5], after[5])
    assert any(not torch.equal(before[t], after[t]) for t in range(6, 10))  # later frames follow
    assert 5 not in memory_before and 5 in core.memory_frames(1)
    # youtube procedure: the schedule restarts at the corrected frame (9 would be next, but is the last);
    # davis: the corrected frame is memorised besides the schedule's
    assert core.memory_frames(1) == ([0, 4, 5] if preset == "generic" else [0, 4, 5, 8])


def test_correction_of_one_group_memorises_that_group_only(network):
    frames, mask = video(7)
    core = InferenceCore(network, PRESETS["davis2017"].replace(mem_every=100), "cpu")
    second = torch.zeros_like(mask)
    second[mask == 2] = 2
    first = torch.where(mask == 1, mask, torch.zeros_like(mask))
    fixed = correction()
    run_core(core, frames, {0: (first, [1]), 1: (second, [2]), 4: (fixed, [], [1])})
    assert core.memory_frames(1) == [0, 4]
    assert core.memory_frames(2) == [1]


def test_corrected_frame_is_processed_when_not_an_output(network):
    frames, mask = video(9)
    core = InferenceCore(network, PRESETS["generic"].replace(mem_every=100), "cpu")
    processed = run_core(core, frames, {0: (mask, [1, 2]), 3: (correction(), [], [1])}, outputs={7, 8})
    assert sorted(processed) == [0, 3, 7, 8]
    assert core.memory_frames(1) == [0, 3]
    assert core.will_process(output=False, corrected=True)


def test_bad_corrections_are_refused(network):
    frames, mask = video(3)
    core = InferenceCore(network, PRESETS["generic"], "cpu")
    with pytest.raises(ValueError, match="corrected object ids must be known objects"):
        run_core(core, frames, {0: (mask, [1, 2]), 1: (mask, [], [3])})
    with pytest.raises(ValueError, match="without a mask"):
        run_core(core, frames, {0: (mask, [1, 2]), 1: (None, [], [1])})
