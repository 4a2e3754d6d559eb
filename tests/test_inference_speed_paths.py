"""The optimised inference path (shared per-frame work, top-k readout as a
gather, batched decoding, the speed layer) gives the probabilities of the baseline
path (scripts/baseline_core.py: the core before the speed work) to 1e-5."""
import copy

import pytest
import torch

from inference_core.acceleration import accelerate
from inference_core.backend import TorchBackend
from inference_core.core import InferenceCore
from inference_core.memory_bank import MemoryRead
from inference_core.winograd import use_winograd
from model.memory_readout import MemoryRecord
from scripts.baseline_core import baseline_core
from tests.helpers_core import run_core
from util.config import PRESETS
from util.device import inference_amp_available

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


def test_channels_last_network_same_probabilities(network):
    config = PRESETS["davis2017"].replace(mem_every=2, sample_threshold=3, anchors=(1, -2))
    ids = [1, 2]
    assert_same(network, config, video(9), {0: (objects_mask(ids), ids)},
                optimised_network=accelerate(copy.deepcopy(network), "cpu", winograd=False))


@pytest.mark.parametrize("procedure", ["davis2017", "youtube"])
def test_winograd_network_same_probabilities(network, procedure):
    """The eval scripts' CPU default: channels-last and Winograd F(4x4, 3x3) convolutions,
    here on every 3x3 convolution (the tiny test frames are below the size thresholds)."""
    fast = accelerate(copy.deepcopy(network), "cpu", winograd=False)
    use_winograd(fast, min_channels=1, min_pixels=1)
    config = PRESETS[procedure].replace(mem_every=2, sample_threshold=3, anchors=(1, -2))
    frames = video(10, seed=2)
    given = {0: (objects_mask([1, 2]), [1, 2])}
    if procedure == "youtube":
        given[4] = (objects_mask([0, 0, 3], seed=1), [3])
    assert_same(network, config, frames, given, optimised_network=fast)


def test_backend_segment_equals_the_training_segment(network):
    """The optimised backend's segmentation of one read is ``IMSFR.segment``'s (the training
    pass, also the baseline's maths) to float rounding."""
    torch.manual_seed(1)
    key, f8, f4 = torch.randn(1, 512, 3, 4), torch.randn(1, 128, 6, 8), torch.randn(1, 64, 12, 16)
    memory = MemoryRecord(torch.randn(1, 512, 2, 3, 4), torch.randn(1, 2, 512, 2, 3, 4),
                          torch.randn(1, 512, 1, 3, 4), torch.randn(1, 2, 512, 1, 3, 4),
                          torch.randn(1, 512, 1, 3, 4), torch.randn(1, 2, 512, 1, 3, 4))
    read = MemoryRead([1, 2], (0, 1), 0, 1, memory)
    with torch.no_grad():
        _, prob = network.segment(key, f8, f4, memory, top_k=4)
        fast = TorchBackend(network).segment(key, f8, f4, [read], 4)
    assert fast.shape == prob[0].shape == (2, 48, 64)
    assert (fast - prob[0]).abs().max().item() <= TOLERANCE


@pytest.mark.skipif(not inference_amp_available("cpu"), reason="no native bfloat16 on this CPU")
def test_amp_on_cpu_runs_in_bfloat16(network):
    """--amp on CPU: autocast bfloat16 (keys stored in bfloat16), float32 probabilities that sum to 1."""
    ids = [1, 2]
    config = PRESETS["davis2017"].replace(mem_every=2, amp=True)
    core = InferenceCore(network, config, "cpu")
    assert core.use_amp
    probs = run_core(core, video(5), {0: (objects_mask(ids), ids)})
    assert core.banks[0].first[1].dtype == torch.bfloat16
    for prob in probs.values():
        assert prob.dtype == torch.float32 and torch.isfinite(prob).all()
        assert torch.allclose(prob.sum(0), torch.ones(HEIGHT, WIDTH), atol=1e-5)
