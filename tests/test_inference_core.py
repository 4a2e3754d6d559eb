"""The inference core: memory rules, per-frame API, padding, determinism."""
import pytest
import torch

from inference_core.core import InferenceConfig, InferenceCore


def video(num_frames, height=45, width=61, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = [torch.randn(3, height, width, generator=g) for _ in range(num_frames)]
    mask = torch.zeros(height, width, dtype=torch.long)
    mask[5:20, 5:25] = 1
    mask[25:40, 30:55] = 2
    return frames, mask


def run(core, frames, given):
    """given: {frame index: (mask, new ids)}; returns the label maps."""
    core.start_video()
    labels = []
    for t, frame in enumerate(frames):
        mask, ids = given.get(t, (None, ()))
        prob = core.step(frame, frames[t + 1] if t + 1 < len(frames) else None, mask=mask, new_objects=ids)
        assert prob.shape == (1 + core.num_objects, *frame.shape[-2:])
        assert torch.allclose(prob.sum(0), torch.ones(frame.shape[-2:]), atol=1e-5)
        labels.append(prob.argmax(0))
    return labels


@pytest.mark.parametrize("mem_every,num_frames,expected", [
    (3, 10, [0, 3, 6]),         # frame 9 is last: never encoded (no next frame)
    (3, 11, [0, 3, 6, 9]),
    (1, 5, [0, 1, 2, 3]),
    (5, 5, [0]),
])
def test_memory_holds_exactly_the_rule_frames(network, mem_every, num_frames, expected):
    core = InferenceCore(network, InferenceConfig(mem_every=mem_every, sample_threshold=100), "cpu")
    frames, mask = video(num_frames)
    run(core, frames, {0: (mask, [1, 2])})
    assert core.memory_frames(1) == expected
    assert core.memory_state(1).temporary is None


def test_include_last_keeps_the_last_frame_as_temporary(network):
    core = InferenceCore(network, InferenceConfig(mem_every=3, include_last=True, sample_threshold=100), "cpu")
    frames, mask = video(6)
    core.start_video()
    reads = []
    for t, frame in enumerate(frames):
        core.step(frame, frames[t + 1] if t + 1 < 6 else None,
                  mask=mask if t == 0 else None, new_objects=[1, 2] if t == 0 else ())
        state = core.memory_state(1)
        reads.append(state.last_read)
        assert state.temporary == (t if t % 3 and t < 5 else (4 if t == 5 else None))
    assert core.memory_frames(1) == [0, 3]
    # frame t reads the memory plus the temporary frame t-1 when t-1 was not memorised
    assert reads[1:] == [[0], [0, 1], [0, 2], [0, 3], [0, 3, 4]]


def test_sampling_reads_anchors_and_a_fraction(network):
    config = InferenceConfig(mem_every=1, sample_threshold=3, sample_fraction=0.5, anchors=(0, -2), seed=0)
    core = InferenceCore(network, config, "cpu")
    frames, mask = video(8)
    core.start_video()
    for t, frame in enumerate(frames):
        before = core.memory_frames(1) if core.banks else []
        core.step(frame, frames[t + 1] if t + 1 < 8 else None,
                  mask=mask if t == 0 else None, new_objects=[1, 2] if t == 0 else ())
        if t == 0:
            continue               # frame 0 gives the objects: no readout
        read = core.memory_state(1).last_read
        assert core.memory_state(2).last_read == read  # davis procedure: one draw for all objects
        if len(before) <= 3:       # at or below the threshold: everything
            assert read == before
        else:                      # the anchors, then a sorted sample of all but the last
            sampled = read[2:]
            assert read[:2] == [before[0], before[-2]]
            assert len(sampled) == int(0.5 * len(before)) and sampled == sorted(sampled)
            assert set(sampled) <= set(before[:-1])


def test_given_mask_is_reproduced_and_padding_is_exact(network):
    core = InferenceCore(network, InferenceConfig(), "cpu")
    frames, mask = video(3, height=37, width=53)
    labels = run(core, frames, {0: (mask[:37, :53], [1, 2])})
    assert torch.equal(labels[0], mask[:37, :53])


def test_objects_appearing_mid_video(network):
    core = InferenceCore(network, InferenceConfig(mem_every=2), "cpu")
    frames, mask = video(7)
    late = torch.zeros_like(mask)
    late[30:44, 0:12] = 3
    labels = run(core, frames, {0: (mask, [1, 2]), 4: (late, [3])})
    assert all((l <= 2).all() for l in labels[:4])
    assert (labels[4][late == 3] == 3).all()
    assert len(core.banks) == 2 and core.memory_frames(3) == [4]
    assert core.memory_frames(1) == [0, 2, 4]


def test_frames_before_any_object_are_background(network):
    core = InferenceCore(network, InferenceConfig(), "cpu")
    frames, mask = video(4)
    labels = run(core, frames, {2: (mask, [1, 2])})
    assert (labels[0] == 0).all() and (labels[1] == 0).all()
    assert torch.equal(labels[2], mask)


def test_wrong_new_object_ids_are_refused(network):
    core = InferenceCore(network, InferenceConfig(), "cpu")
    frames, mask = video(2)
    with pytest.raises(ValueError, match=r"new object ids must be \[1, 2\]"):
        core.step(frames[0], frames[1], mask=mask, new_objects=[2, 3])


def test_fixed_weights_and_seed_give_identical_masks(network):
    config = InferenceConfig(mem_every=1, sample_threshold=2, sample_fraction=0.5, anchors=(0, -2), seed=7)
    frames, mask = video(9)
    first = run(InferenceCore(network, config, "cpu"), frames, {0: (mask, [1, 2])})
    second = run(InferenceCore(network, config, "cpu"), frames, {0: (mask, [1, 2])})
    assert all(torch.equal(a, b) for a, b in zip(first, second))
