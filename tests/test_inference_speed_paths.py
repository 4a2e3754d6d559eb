"""The optimised inference path (shared per-frame work, top-k readout as a
gather, batched decoding, channels-last weights) gives the probabilities of the baseline
path (scripts/baseline_core.py: the core before the speed work) to 1e-5; the reduced
precisions (--precision bf16 / fp16, --amp) run on every CPU (emulated where not native)."""
import copy
import math

import pytest
import torch

from inference_core.backend import TorchBackend
from inference_core.core import InferenceCore
from inference_core.memory_bank import MemoryRead
from inference_core.memory_reader import read_memory_top_k, top_k_weights
from model.memory_readout import MemoryRecord, read_memory
from scripts.baseline_core import BaselineBackend, baseline_core, dense_top_k_softmax
from tests.helpers_core import run_core
from util.config import PRESETS

TOLERANCE = 1e-5
HEIGHT, WIDTH = 72, 104  # padded to 80 x 112: 5 x 7 = 35 positions per memory frame at 1/16


@pytest.fixture(autouse=True)
def one_thread(_few_threads):
    """Tiny frames: one thread is many times faster than two on a busy 2-core machine
    (runs after conftest's two-thread setting)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def video(num_frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, HEIGHT, WIDTH, generator=g) for _ in range(num_frames)]


def objects_mask(ids, seed=0):
    """Non-overlapping boxes for ``ids`` in a (HEIGHT, WIDTH) int64 mask."""
    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    for n, i in enumerate(ids):
        top, left = 6 + 20 * (n % 3), 8 + 30 * (n % 3) + 4 * seed
        mask[top:top + 18, left:left + 24] = i
    return mask


def assert_same(network, config, frames, given, outputs=None, optimised_network=None):
    baseline = baseline_core(network, config, "cpu")
    optimised = InferenceCore(optimised_network or network, config, "cpu")
    expected = run_core(baseline, frames, given, outputs)
    got = run_core(optimised, frames, given, outputs)
    assert sorted(got) == sorted(expected)
    worst = max((got[t] - expected[t]).abs().max().item() for t in expected)
    assert worst <= TOLERANCE, worst
    # Both paths read the same memory frames (the sampler streams stayed in step).
    for obj in range(1, optimised.num_objects + 1):
        assert baseline.memory_state(obj) == optimised.memory_state(obj)
    return baseline, optimised


@pytest.mark.parametrize("num_objects", [1, 2, 3])
@pytest.mark.parametrize("sampling", [False, True])
def test_davis_procedure_same_probabilities(network, num_objects, sampling):
    # mem_every 1 and threshold 4: sampling from the 6th frame on (anchors 1, -5..-2 exist).
    config = PRESETS["davis2017"].replace(mem_every=1, sample_threshold=4 if sampling else 100)
    ids = list(range(1, num_objects + 1))
    baseline, _ = assert_same(network, config, video(12), {0: (objects_mask(ids), ids)})
    read, stored = baseline.memory_state(1).last_read, baseline.memory_frames(1)
    assert (read != stored) == sampling  # the last frame read anchors + a draw, or all 11 memory frames


def test_youtube_object_appearing_mid_video_with_sparse_outputs(network):
    # Per-object draws (sampling from T > 4), an object given on frame 5, every 3rd frame output.
    config = PRESETS["youtube"].replace(mem_every=1, sample_threshold=4, anchors=(0, 1, -2))
    frames = video(14, seed=1)
    given = {0: (objects_mask([1, 2]), [1, 2]), 5: (objects_mask([0, 0, 3], seed=1), [3])}
    _, optimised = assert_same(network, config, frames, given, outputs={0, 3, 5, 6, 9, 12, 13})
    assert optimised.memory_frames(3)[0] == 5
    assert optimised.memory_state(1).last_read != optimised.memory_state(2).last_read  # the two objects drew different frames and were read in one batch


@pytest.mark.parametrize("procedure", ["davis2017", "youtube"])
def test_channels_last_network_same_probabilities(network, procedure):
    """The eval scripts' network: channels-last weights (inference_core/build.py: build_core)."""
    fast = copy.deepcopy(network).to(memory_format=torch.channels_last)
    assert TorchBackend(fast).channels_last
    config = PRESETS[procedure].replace(mem_every=2, sample_threshold=3, anchors=(1, -2))
    given = {0: (objects_mask([1, 2]), [1, 2])}
    if procedure == "youtube":
        given[4] = (objects_mask([0, 0, 3], seed=1), [3])
    assert_same(network, config, video(10, seed=2), given, optimised_network=fast)


def test_top_k_softmax_keeps_k_largest_dense_and_gathered():
    """The reference's top-k softmax: the dense weights (the baseline's) and the gather
    (inference_core/memory_reader.py, the core's and the ONNX graph's) read the same number."""
    affinity = torch.tensor([[[0.0], [1.0], [3.0], [2.0]]])  # B=1, 4 memory positions, 1 query
    weights = dense_top_k_softmax(affinity, top_k=2)
    e = math.exp(1.0)
    assert torch.allclose(weights[0, :, 0], torch.tensor([0.0, 0.0, e / (e + 1), 1 / (e + 1)]))
    value = torch.arange(4.0).view(1, 1, 1, 4, 1, 1)  # B, K, C, T, h, w
    expected = torch.tensor([(2 * e + 3) / (e + 1)])
    assert torch.allclose(read_memory(weights, value).flatten(), expected)
    kept, indices = top_k_weights(affinity, 2)
    assert indices[0, :, 0].tolist() == [2, 3]
    assert torch.allclose(kept[0, :, 0], torch.tensor([e / (e + 1), 1 / (e + 1)]))
    assert torch.allclose(read_memory_top_k(kept, indices, value).flatten(), expected)


def test_top_k_gather_equals_the_dense_readout():
    """Batch 2, 3 objects, 2 memory frames: the gather reads what the dense top-k weights read."""
    g = torch.Generator().manual_seed(2)
    affinity, value = torch.randn(2, 24, 12, generator=g), torch.randn(2, 3, 8, 2, 3, 4, generator=g)
    for k in (1, 4, 23):
        gathered = read_memory_top_k(*top_k_weights(affinity, k), value)
        assert gathered.shape == (2, 3, 8, 3, 4)
        assert (gathered - read_memory(dense_top_k_softmax(affinity, k), value)).abs().max().item() <= 1e-6


def test_backend_segment_equals_the_baseline_and_the_training_segment(network):
    """The optimised backend's segmentation of one read is the baseline's (``IMSFR.segment``'s
    maths with the dense top-k readout) to float rounding, and without top-k ``IMSFR.segment``'s
    (the training pass)."""
    torch.manual_seed(1)
    key, f8, f4 = torch.randn(1, 512, 3, 4), torch.randn(1, 128, 6, 8), torch.randn(1, 64, 12, 16)
    memory = MemoryRecord(torch.randn(1, 512, 2, 3, 4), torch.randn(1, 2, 512, 2, 3, 4),
                          torch.randn(1, 512, 1, 3, 4), torch.randn(1, 2, 512, 1, 3, 4),
                          torch.randn(1, 512, 1, 3, 4), torch.randn(1, 2, 512, 1, 3, 4))
    read = MemoryRead([1, 2], (0, 1), 0, 1, memory)
    with torch.no_grad():
        baseline = BaselineBackend(network).segment(key, f8, f4, [read], 4)
        fast = TorchBackend(network).segment(key, f8, f4, [read], 4)
        _, training = network.segment(key, f8, f4, memory)
        plain = TorchBackend(network).segment(key, f8, f4, [read], None)
    assert fast.shape == baseline.shape == training[0].shape == (2, 48, 64)
    assert (fast - baseline).abs().max().item() <= TOLERANCE
    assert (plain - training[0]).abs().max().item() <= TOLERANCE
    assert (fast - plain).abs().max().item() > 10 * TOLERANCE  # top-k 4 of 24 positions changed the numbers


# ---- reduced precision: forced, so it runs on every CPU (emulated bfloat16 / float16 where the CPU
# has no native support: only slower, here up to 10x). Small frames, one thread, 3 frames: frame 0
# memorised, frames 1 and 2 read it.
def reduced_run(network, precision, store_reduced=False, frames=3):
    config = PRESETS["davis2017"].replace(mem_every=2, precision=precision)
    core = InferenceCore(network, config, "cpu")
    if store_reduced:  # the other placement of the memory: as computed, upcast by every read
        core._stored = lambda tensor: tensor
    ids = [1, 2]
    return core, run_core(core, video(frames), {0: (objects_mask(ids), ids)})


def assert_probabilities(probs):
    for prob in probs.values():
        assert prob.dtype == torch.float32 and torch.isfinite(prob).all()
        assert torch.allclose(prob.sum(0), torch.ones(HEIGHT, WIDTH), atol=1e-5)


def test_amp_on_cpu_runs_in_bfloat16(network):
    """--amp on CPU: autocast bfloat16 (on any CPU), the memory kept in float32, float32
    probabilities that sum to 1, and not the float32 run's numbers (the reduced type ran)."""
    core, probs = reduced_run(network, "amp")
    assert core.use_amp and core.dtype == torch.bfloat16
    with torch.inference_mode(), core.autocast():
        key = core.backend.encode_key(torch.zeros(1, 3, 80, 112))[0]
    assert key.dtype == torch.bfloat16
    assert core.banks[0].first[1].dtype == torch.float32 and core.banks[0].keys.buffer.dtype == torch.float32
    assert_probabilities(probs)
    _, reference = reduced_run(network, "fp32")
    assert max((probs[t] - reference[t]).abs().max().item() for t in probs) > 0


@pytest.mark.parametrize("precision,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_reduced_precision_close_to_float32(network, precision, dtype):
    """--precision bf16 / fp16 on CPU: that type, float32 probabilities within the type's rounding
    of the float32 run on the first propagated frame (later frames read memories that differ too)."""
    core, probs = reduced_run(network, precision, frames=2)
    _, reference = reduced_run(network, "fp32", frames=2)
    assert core.dtype == dtype
    assert_probabilities(probs)
    worst = (probs[1] - reference[1]).abs().max().item()
    assert 0 < worst < (1e-2 if dtype == torch.bfloat16 else 1e-3), worst  # measured: 4.7e-4 and 5.8e-5


def test_memory_placement_does_not_change_the_numbers(network):
    """The memory in float32 (the core's) or in the reduced type as computed: the same probabilities
    bit for bit (the cast is exact); the float32 memory holds twice the bytes."""
    core, probs = reduced_run(network, "bf16")
    reduced, reduced_probs = reduced_run(network, "bf16", store_reduced=True)
    assert reduced.banks[0].keys.buffer.dtype == torch.bfloat16
    assert all(torch.equal(probs[t], reduced_probs[t]) for t in probs) and sorted(probs) == sorted(reduced_probs)
    assert core.held_bytes() == 2 * reduced.held_bytes()
