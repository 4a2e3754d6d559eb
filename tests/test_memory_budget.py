"""--memory_budget: a bounded long-term memory (anchors kept, the rest a reservoir
sample), nothing in the inference core that grows with the video, --offload_memory."""
import argparse
import collections
import random

import pytest
import torch

from inference_core import build, cli
from inference_core.core import InferenceCore, memory_store_device
from inference_core.frame_store import FrameStore, ReservoirIndex
from inference_core.memory_bank import MemoryBank
from inference_core.sampler import IsogenousSampler
from util.config import PRESETS, InferenceConfig, anchor_span, minimum_budget

TRIALS = 10_000


def keep_rates(make_index, frames, trials=TRIALS):
    """How often each memory frame is still stored after ``frames`` were memorised."""
    kept = collections.Counter()
    for trial in range(trials):
        index = make_index(random.Random(trial))
        for m in range(frames):
            index.add(m)
        kept.update(frame for frame, _ in index.entries())
    return [kept[m] / trials for m in range(frames)]


class AlwaysReplace(ReservoirIndex):
    """A biased store (each candidate evicts a random frame): keeps recent frames more."""

    def _offer(self, entry):
        self.candidates += 1
        if len(self.reservoir) < self.capacity:
            self.reservoir.append(entry)
            return
        j = self.rng.randrange(self.capacity)
        self.free.append(self.reservoir[j][1])
        self.reservoir[j] = entry


def uniform_violations(rates, head, tail, budget, tolerance):
    """Frames whose keep rate differs from the expected one (1 for anchors, R/T' for the others)."""
    frames = len(rates)
    candidates = frames - head - tail
    expected = (budget - head - tail) / candidates
    bad = [m for m in range(head, frames - tail) if abs(rates[m] - expected) > tolerance]
    bad += [m for m in list(range(head)) + list(range(frames - tail, frames)) if rates[m] != 1.0]
    return bad


def test_every_older_frame_is_kept_with_the_same_probability():
    # DAVIS 2017 anchors (1, -5..-2): frames 0-1 and the 5 newest kept; 13 reservoir slots.
    head, tail = anchor_span(PRESETS["davis2017"].anchors)
    assert (head, tail) == (2, 5)
    budget, frames = 20, 60
    rates = keep_rates(lambda rng: ReservoirIndex(budget, head, tail, rng), frames)
    expected = 13 / 53
    # binomial sd sqrt(p (1 - p) / 10,000) = 0.0043; tolerance 0.02 (4.6 sd)
    assert uniform_violations(rates, head, tail, budget, 0.02) == [], rates
    assert abs(sum(rates[head:frames - tail]) - 13) < 1e-9  # the reservoir is always full
    old, new = rates[head:head + 17], rates[frames - tail - 17:frames - tail]
    assert abs(sum(old) / 17 - expected) < 0.006 and abs(sum(new) / 17 - expected) < 0.006
    # The check has power: a store that evicts on every candidate keeps recent frames more.
    biased = keep_rates(lambda rng: AlwaysReplace(budget, head, tail, rng), frames, trials=2000)
    assert len(uniform_violations(biased, head, tail, budget, 0.02)) > 20


@pytest.mark.parametrize("name", ["davis2017", "davis2016", "youtube"])
@pytest.mark.parametrize("budget_extra", [1, 4, 30])
def test_anchors_are_never_evicted_and_read_as_without_budget(name, budget_extra):
    anchors = PRESETS[name].anchors
    head, tail = anchor_span(anchors)
    budget = minimum_budget(anchors) - 1 + budget_extra
    index = ReservoirIndex(budget, head, tail, random.Random(budget_extra))
    sampler = IsogenousSampler(InferenceConfig(sample_threshold=10, sample_fraction=0.6, anchors=anchors, seed=1))
    checked = set()
    for m in range(300):
        slot = index.add(1000 + 6 * m)  # video frame of memory frame m
        T = m + 1
        entries = index.entries()
        frames = [f for f, _ in entries]
        slots = [s for _, s in entries]
        assert len(entries) == min(T, budget) and len(set(slots)) == len(slots)
        assert all(0 <= s < budget for s in slots) and slot in slots
        assert frames == sorted(frames) and len(index.free) == budget - len(entries)
        assert frames[:min(head, T)] == [1000 + 6 * i for i in range(min(head, T))]
        newest = [1000 + 6 * i for i in range(max(0, T - tail), T)]
        assert frames[-len(newest):] == newest
        if len(frames) > sampler.threshold:  # the sampler's anchors read the frames they read without a budget
            read = sampler.select(len(frames))
            checked.add(budget)
            for a, position in zip(anchors, read):
                assert frames[position] == 1000 + 6 * (a % T)
    assert checked == ({budget} if budget > sampler.threshold else set())


def test_budget_smaller_than_the_anchors_is_refused():
    assert minimum_budget((1, -5, -4, -3, -2)) == 8 and minimum_budget((0, -2)) == 4
    with pytest.raises(ValueError, match="memory_budget must be at least 8"):
        InferenceConfig(memory_budget=7)
    with pytest.raises(ValueError, match="at least 4"):
        ReservoirIndex(3, 1, 2, random.Random(0))
    InferenceConfig(memory_budget=8)


def test_bounded_store_is_allocated_once_and_overwritten_in_place():
    def frame(value, objects=2):
        return (torch.full((1, 3, 2, 2), float(value)), torch.full((1, objects, 4, 2, 2), float(value)),
                torch.full((1, objects, 4, 2, 2), -float(value)))

    bank = MemoryBank([1, 2], budget=6, anchors=(0, -2), rng=random.Random(0))
    sampler = IsogenousSampler(InferenceConfig(sample_threshold=3, sample_fraction=0.5, anchors=(0, -2), seed=0))
    pointers = set()
    for t in range(100):
        bank.add(t, *frame(t))
        pointers.add((bank.keys.buffer.data_ptr(), bank.values.buffer.data_ptr()))
        assert bank.keys.buffer.shape[2] == 6 and bank.values.buffer.shape[3] == 6
        assert bank.memorised == t + 1 and bank.num_frames == min(t + 1, 6)
        for memory_read in bank.reads(sampler, per_object=True):
            read = bank.last_read[memory_read.objects[0]]
            assert list(memory_read.frames) == read
            # each read frame's key and value are that frame's
            memory = memory_read.memory
            assert memory.long_term_key[0, 0, :, 0, 0].tolist() == [float(f) for f in read]
            assert memory.long_term_value.shape[1] == len(memory_read.objects)
            assert memory.long_term_value[0, 0, 0, :, 0, 0].tolist() == [float(f) for f in read]
            assert set(read) <= set(bank.frame_indices)
    assert len(pointers) == 1  # never reallocated
    assert bank.frame_indices[0] == 0 and bank.frame_indices[-2:] == [98, 99]


def test_unbounded_store_grows_in_chunks_without_copying_per_frame():
    store = FrameStore(dim=0)
    reallocations, pointer = 0, None
    for i in range(500):
        assert store.append(torch.full((1, 3), float(i))) == i
        if store.buffer.data_ptr() != pointer:
            reallocations, pointer = reallocations + 1, store.buffer.data_ptr()
    assert store.all()[:, 0].tolist() == [float(i) for i in range(500)]
    assert reallocations < 20  # geometric growth: O(log T) copies of the store, not T


# ----------------------------------------------------------------------------- the inference core


@pytest.fixture(autouse=True)
def _one_thread(_few_threads):
    # Tiny frames: a second thread only adds overhead (conftest's fixture restores 2 per test).
    torch.set_num_threads(1)
    yield


def clip(num_frames, height=32, width=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, height, width, generator=g) for _ in range(num_frames)]


def first_mask(height=32, width=32):
    mask = torch.zeros(height, width, dtype=torch.long)
    mask[height // 16:height * 7 // 16, width // 16:width * 7 // 16] = 1
    mask[height * 9 // 16:height * 15 // 16, width // 2:width * 15 // 16] = 2
    return mask


def held_state(obj, path="core", out=None, seen=None):
    """Sizes of every list, dict, deque and tensor the core holds (the network excluded):
    {path: length or storage bytes}."""
    out = {} if out is None else out
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (int, float, str, bool, type(None), random.Random, torch.device, torch.dtype,
                                           torch.nn.Module, slice)):
        return out
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        out[path] = obj.untyped_storage().nbytes()
    elif isinstance(obj, (list, tuple, collections.deque)):
        out[path] = len(obj)
        for i, item in enumerate(obj):
            held_state(item, f"{path}[{i}]", out, seen)
    elif isinstance(obj, dict):
        out[path] = len(obj)
        for key, item in obj.items():
            held_state(item, f"{path}[{key!r}]", out, seen)
    elif hasattr(obj, "__dict__"):
        for name, item in vars(obj).items():
            held_state(item, f"{path}.{name}", out, seen)
    else:
        raise TypeError(f"{path}: unexpected {type(obj).__name__}")
    return out


def run(core, frames, mask, every=None, check=None):
    core.start_video()
    probs = []
    for t, frame in enumerate(frames):
        last = t + 1 == len(frames)
        probs.append(core.step(frame, None if last else frames[t + 1],
                               mask=mask if t == 0 else None, new_objects=(1, 2) if t == 0 else ()))
        if check is not None:
            check(t)
    return probs


def test_400_frames_with_a_budget_hold_nothing_that_grows(network):
    budget = 12
    config = PRESETS["davis2017"].replace(mem_every=1, memory_budget=budget)
    core = InferenceCore(network, config, "cpu")
    frames = clip(400, 16, 16)  # tiny frames: the store's bookkeeping is what is tested
    snapshots = {}

    def check(t):
        bank = core.banks[0]
        assert bank.num_frames == min(t + 1, budget) and len(bank.frame_indices) <= budget
        assert bank.keys.buffer.shape[2] == budget and bank.values.buffer.shape[3] == budget
        if t > 0:
            read = bank.last_read[1]
            assert set(read) <= set(range(t)) and len(read) <= 5 + budget
        if t in (100, 250, 398):
            snapshots[t] = held_state(core)

    run(core, frames, first_mask(16, 16), check=check)
    bank = core.banks[0]
    assert bank.memorised == 399 and bank.frame_indices[:2] == [0, 1]
    assert bank.frame_indices[-5:] == [394, 395, 396, 397, 398]
    assert snapshots[100] == snapshots[250] == snapshots[398]
    assert any(".keys.buffer" in path for path in snapshots[398])  # the store is inspected

    # The same inspection sees an unbounded memory grow.
    unbounded = InferenceCore(network, PRESETS["davis2017"].replace(mem_every=1), "cpu")
    sizes = {}
    run(unbounded, frames[:40], first_mask(16, 16),
        check=lambda t: sizes.__setitem__(t, held_state(unbounded)) if t in (20, 38) else None)
    grown = [path for path in sizes[38] if sizes[38][path] != sizes[20].get(path)]
    assert "core.banks[0].index.frames" in grown and "core.banks[0].keys.buffer" in grown


def test_budget_not_reached_changes_nothing_and_reservoir_leaves_the_sampler_stream_alone(network):
    config = PRESETS["davis2017"].replace(mem_every=1, sample_threshold=5, seed=4)
    frames, mask = clip(24), first_mask()
    reference_core = InferenceCore(network, config, "cpu")
    reads = []
    reference = run(reference_core, frames, mask, check=lambda t: reads.append(
        list(reference_core.banks[0].last_read.get(1, []))))
    roomy_core = InferenceCore(network, config.replace(memory_budget=40), "cpu")
    roomy_reads = []
    roomy = run(roomy_core, frames, mask, check=lambda t: roomy_reads.append(
        list(roomy_core.banks[0].last_read.get(1, []))))
    assert roomy_reads == reads
    assert all(torch.equal(a, b) for a, b in zip(reference, roomy))
    # A budget that evicts: same outputs until the first eviction (memory of 11 frames at frame 11).
    tight_core = InferenceCore(network, config.replace(memory_budget=10), "cpu")
    tight = run(tight_core, frames, mask)
    assert all(torch.equal(a, b) for a, b in zip(reference[:11], tight[:11]))
    assert not all(torch.equal(a, b) for a, b in zip(reference[11:], tight[11:]))
    assert tight_core.banks[0].num_frames == 10 and tight_core.banks[0].memorised == 23


def test_youtube_procedure_with_a_budget_and_a_late_object(network):
    core = InferenceCore(network, PRESETS["youtube"].replace(mem_every=1, memory_budget=13, seed=2), "cpu")
    frames = clip(45)
    late = torch.zeros(32, 32, dtype=torch.long)
    late[20:30, 2:12] = 3
    core.start_video()
    for t, frame in enumerate(frames):
        given = {0: (first_mask(), (1, 2)), 30: (late, (3,))}.get(t, (None, ()))
        prob = core.step(frame, frames[t + 1] if t + 1 < 45 else None, mask=given[0], new_objects=given[1])
        assert prob.shape[0] == 1 + core.num_objects
    first, second = core.banks
    assert first.num_frames == 13 and first.frame_indices[:2] == [0, 1] and first.memorised == 44
    assert second.num_frames == 13 and second.frame_indices[:2] == [30, 31] and second.memorised == 14
    # per-object draws read different stored frames
    assert first.last_read[1] != first.last_read[2]
    # the two banks' reservoirs have their own streams
    assert first.index.rng.getstate() != second.index.rng.getstate()


def test_offload_moves_only_the_frames_read(network):
    """Store and compute devices split (both CPU here: no GPU in this test environment);
    each read copies out of the store exactly the frames it reads (keys and values)."""
    config = PRESETS["davis2017"].replace(mem_every=1, memory_budget=16, offload_memory=True)
    core = InferenceCore(network, config, "cpu")
    assert core.store_device == torch.device("cpu")
    frames = clip(30)
    checked = 0

    def check(t):
        nonlocal checked
        if t == 0:
            return
        state = core.memory_state(1)
        read = len(state.last_read)
        assert state.transfers == [(read, read)], (t, state.transfers)  # keys and values: exactly the read frames
        assert core.banks[0].keys.buffer.device == core.store_device
        checked += 1

    run(core, frames, first_mask(), check=check)
    assert checked == 29
    # Without CUDA the flag keeps the store where the network runs; on CUDA it puts it on the CPU.
    assert core.store_device == core.device
    cuda = torch.device("cuda")
    assert memory_store_device(config, cuda) == torch.device("cpu")
    assert memory_store_device(config.replace(offload_memory=False), cuda) == cuda


def test_flags(monkeypatch, capsys, network):
    def parse(benchmark, *argv):
        parser = argparse.ArgumentParser()
        cli.add_inference_arguments(parser, benchmark)
        return parser.parse_args(["--model", "m.pth", "--output", "out", *argv])

    assert parse("generic").memory_budget == PRESETS["generic"].memory_budget == 50
    for benchmark in ("davis2017", "davis2016", "youtube"):
        assert parse(benchmark).memory_budget is None  # the reference's behaviour
    assert parse("generic", "--memory_budget", "none").memory_budget is None
    assert parse("davis2017", "--memory_budget", "20").memory_budget == 20
    with pytest.raises(SystemExit):
        parse("davis2017", "--memory_budget", "0")
    monkeypatch.setattr(build, "build_network", lambda path, device: network)
    core = cli.core_from_args(parse("davis2017", "--device", "cpu", "--memory_budget", "20",
                                         "--offload_memory"))
    assert "note: --offload_memory has no effect on cpu" in capsys.readouterr().out
    assert core.config.memory_budget == 20 and core.config.offload_memory
    assert core.store_device == torch.device("cpu")
