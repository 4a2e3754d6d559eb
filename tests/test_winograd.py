"""Winograd F(4x4, 3x3) convolution (inference_core/winograd.py, winograd_conv.py): the same numbers as
the direct convolution to float32 rounding, only where it is meant to run; the auto mode's
trials and decisions (kept per shape, forced by the flags, within the memory budget)."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from inference_core import winograd
from inference_core.winograd import WinogradConv2d, use_winograd, winograd_plan
from inference_core.winograd_conv import Workspace, conv3x3, transform_weight
from model.decoder import conv_input_part


def reference(x, conv):
    """The convolution in float64: the exact answer to compare float32 paths with."""
    return F.conv2d(x.double(), conv.weight.double(), None if conv.bias is None else conv.bias.double(), padding=1)


@pytest.mark.parametrize("shape,out_channels,bias", [
    ((1, 8, 12, 16), 4, True),     # whole tiles
    ((2, 16, 7, 9), 8, True),      # sizes not divisible by the tile: padded and cropped
    ((1, 32, 5, 3), 16, False),
    ((3, 4, 1, 1), 2, True),       # a single pixel
])
def test_conv3x3_equals_the_direct_convolution(shape, out_channels, bias):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    conv = nn.Conv2d(shape[1], out_channels, 3, padding=1, bias=bias)
    with torch.no_grad():
        exact = reference(x, conv)
        # The float32 rounding unit at the scale of the sums: eps * max(|w| * |x|).
        unit = torch.finfo(torch.float32).eps * F.conv2d(x.abs().double(), conv.weight.abs().double(),
                                                         padding=1).max().item()
        direct_error = (conv(x).double() - exact).abs().max().item()
        # Small blocks (8 output pixels): several blocks of tile rows, the last one partial.
        got = conv3x3(x, transform_weight(conv.weight), conv.bias, block_pixels=8)
    assert got.shape == exact.shape and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)
    error = (got.double() - exact).abs().max().item()
    # Measured (3 seeds, these shapes and 256 channels): the direct convolution is within
    # 1.4 units, F(4x4) within 13 (its transforms scale by up to 8).
    assert direct_error <= 2 * unit
    assert error <= 32 * unit, (error / unit, direct_error / unit)


@pytest.mark.parametrize("bias", [True, False])
def test_workspace_changes_no_number(bias):
    """conv3x3 in a plan's reused Workspace (grown, then reused by smaller calls) gives the
    bits of buffers allocated for the call."""
    torch.manual_seed(0)
    workspace = Workspace()
    for shape, out_channels in [((2, 16, 40, 36), 8), ((1, 32, 7, 9), 16), ((3, 8, 21, 64), 12), ((1, 4, 1, 1), 2)]:
        x = torch.randn(*shape).contiguous(memory_format=torch.channels_last)
        kernel = transform_weight(torch.randn(out_channels, shape[1], 3, 3))
        b = torch.randn(out_channels) if bias else None
        assert torch.equal(conv3x3(x, kernel, b, block_pixels=256, workspace=workspace),
                           conv3x3(x, kernel, b, block_pixels=256))
    assert workspace.nbytes() > 0
    workspace.release()
    assert workspace.nbytes() == 0


def test_wrong_transform_is_caught():
    """The comparison above can fail: a kernel transformed for the wrong tile gives garbage."""
    torch.manual_seed(0)
    x, conv = torch.randn(1, 8, 8, 8), nn.Conv2d(8, 4, 3, padding=1)
    with torch.no_grad():
        weight_t = transform_weight(conv.weight)
        weight_t = weight_t.flip(0)  # transformed points in the wrong order
        error = (conv3x3(x, weight_t, conv.bias).double() - reference(x, conv)).abs().max().item()
    assert error > 1e-2


def small_model():
    return nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                         nn.Conv2d(16, 16, 1), nn.Conv2d(16, 16, 3, padding=1, stride=2),
                         nn.Conv2d(16, 16, 3, padding=2, dilation=2))


def test_use_winograd_picks_eligible_convolutions_and_keeps_the_state_dict():
    model = small_model()
    keys = {k: v.clone() for k, v in model.state_dict().items()}
    # Only 3x3, stride 1, padding 1, dilation 1 with enough channels.
    assert use_winograd(model, min_channels=16) == 1
    assert [type(m).__name__ for m in model[:3]] == ["Conv2d", "ReLU", "WinogradConv2d"]
    assert use_winograd(model, min_channels=1) == 2
    assert all(type(m) is nn.Conv2d for m in model[3:])
    state = model.state_dict()
    assert list(state) == list(keys) and all(torch.equal(state[k], keys[k]) for k in keys)
    assert use_winograd(model, mode="off") == 2
    assert all(type(m) is not WinogradConv2d for m in model)
    with pytest.raises(ValueError, match="mode"):
        use_winograd(model, mode="fast")


def test_winograd_only_in_cpu_float32_inference():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    fast = copy.deepcopy(conv)
    use_winograd(fast, min_channels=1, min_pixels=1)
    x = torch.randn(2, 8, 10, 12)
    # Training (autograd on): the direct convolution, bit for bit, with gradients.
    assert torch.equal(fast(x), conv(x))
    assert fast(x).requires_grad
    with torch.no_grad():
        assert not torch.equal(fast(x), conv(x))  # the Winograd path ran ...
        assert (fast(x) - conv(x)).abs().max().item() < 1e-5  # ... with the same numbers
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert fast(x).dtype == torch.bfloat16  # autocast: the direct convolution
        empty = torch.zeros(0, 8, 10, 12)
        assert fast(empty).shape == (0, 8, 10, 12)  # an empty batch: the direct convolution
    small = copy.deepcopy(conv)
    use_winograd(small, min_channels=1, min_pixels=200)  # a 10 x 12 map is below 200 pixels
    with torch.no_grad():
        assert torch.equal(small(x), conv(x))


def test_new_weights_are_used():
    """The transformed kernel is cached, and recomputed when the weights change (load_state_dict)."""
    torch.manual_seed(0)
    conv, other = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
    use_winograd(conv, min_channels=1, min_pixels=1)
    x = torch.randn(1, 8, 8, 8)
    with torch.no_grad():
        conv(x)
        conv.load_state_dict(other.state_dict())
        assert (conv(x).double() - reference(x, other)).abs().max().item() < 1e-5


def test_conv_input_part_is_one_term_of_the_split_convolution():
    torch.manual_seed(0)
    conv = nn.Conv2d(12, 8, 3, padding=1)
    x = torch.randn(1, 12, 9, 11)
    winograd = copy.deepcopy(conv)
    use_winograd(winograd, min_channels=1, min_pixels=1)
    with torch.no_grad():
        for module in (conv, winograd):
            whole = conv_input_part(module, x[:, :5], 0, 5) + conv_input_part(module, x[:, 5:], 5, 12, module.bias)
            assert (whole.double() - reference(x, conv)).abs().max().item() < 1e-5


@pytest.mark.parametrize("flags,mode", [([], None), (["--winograd", "on"], "on"), (["--winograd", "auto"], "auto"),
                                        (["--winograd", "off"], None), (["--no_winograd"], None)])
def test_eval_scripts_use_winograd_on_the_cpu_only_when_asked(weights, tmp_path, flags, mode):
    import argparse

    from inference_core.cli import add_inference_arguments, core_from_args
    parser = argparse.ArgumentParser()
    add_inference_arguments(parser, "davis2017")
    args = parser.parse_args(["--model", weights, "--output", str(tmp_path), "--device", "cpu"] + flags)
    network = core_from_args(args).network
    converted = [m for m in network.modules() if isinstance(m, WinogradConv2d)]
    assert bool(converted) == (mode is not None)
    if mode is not None:  # e.g. the gate and the decoder's first block; the 64-channel convolutions stay direct
        assert winograd_plan(network).mode == mode
        assert network.mask in converted and network.decoder.compress.conv1 in converted
        assert network.key_encoder.res2[0].conv1 not in converted and network.key_encoder.layer3[0].conv2 in converted


# ----------------------------------------------------------------------------- the auto mode
# Maps of N x H x W >= AUTO_MIN_PIXELS are tried: real calls, direct and Winograd in turn, TRIALS
# of each per shape. MARGIN and ABORT force the outcome (huge: Winograd wins and is never
# stopped; MARGIN 0: it never wins), so these tests do not depend on this machine's speed.
BIG = (1, 8, 48, 48)  # 2304 pixels


def auto_convs(count=1, budget=10**9):
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(count)])
    reference_model = copy.deepcopy(model)
    use_winograd(model, mode="auto", min_channels=1, budget=budget)
    return model, reference_model, winograd_plan(model)


@pytest.fixture
def never_stopped(monkeypatch):
    monkeypatch.setattr(winograd, "ABORT", 1e9)


@pytest.mark.parametrize("margin,chosen", [(1e9, True), (0.0, False)])
def test_auto_tries_both_in_turn_then_runs_its_choice_bit_for_bit(monkeypatch, never_stopped, margin, chosen):
    monkeypatch.setattr(winograd, "MARGIN", margin)
    model, plain, plan = auto_convs()
    x = torch.randn(*BIG)
    weight, bias = plain[0].weight, plain[0].bias
    trials = 2 * winograd.TRIALS
    with torch.no_grad():
        # The whole convolution and a part of its input channels (the decoder's split convolutions).
        for run, direct, fast in [
                (lambda: model(x), plain(x), conv3x3(x, transform_weight(weight), bias)),
                (lambda: conv_input_part(model[0], x[:, 3:], 3, bias=bias),
                 F.conv2d(x[:, 3:], weight[:, 3:], bias, padding=1),
                 conv3x3(x[:, 3:], transform_weight(weight[:, 3:]), bias))]:
            outputs = [run() for _ in range(trials + 2)]
            # The trial: real calls, direct first, then in turn (whatever the timings), each its
            # algorithm's numbers; then the choice, bit for bit.
            for i, out in enumerate(outputs[:trials]):
                assert torch.equal(out, fast if i % 2 else direct)
            for out in outputs[trials:]:
                assert torch.equal(out, fast if chosen else direct)
    assert [d.winograd for d in plan.decisions.values()] == [chosen, chosen]
    # Only the convolutions that chose Winograd keep a transformed kernel (36 x C x K floats),
    # and a workspace only while one of them runs.
    assert plan.kernels() == ({("0", 0, 8): 36 * 8 * 8 * 4, ("0", 3, 8): 36 * 5 * 8 * 4} if chosen else {})
    assert (plan.workspace.nbytes() > 0) == chosen


@pytest.mark.parametrize("mode", ["on", "off"])
def test_forced_modes_run_one_algorithm_bit_for_bit(mode):
    """--winograd on: every call of an eligible convolution by Winograd (the kernels of
    transform_weight, also for a part of the input channels), in the plan's workspace;
    off: nn.Conv2d's numbers."""
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3, padding=1)
    model = copy.deepcopy(conv)
    use_winograd(model, mode=mode, min_channels=1)
    x = torch.randn(*BIG)
    with torch.no_grad():
        if mode == "on":
            whole = conv3x3(x, transform_weight(conv.weight), conv.bias)
            part = conv3x3(x[:, 3:], transform_weight(conv.weight[:, 3:]), conv.bias)
        else:
            whole, part = conv(x), F.conv2d(x[:, 3:], conv.weight[:, 3:], conv.bias, padding=1)
        for _ in range(2):
            assert torch.equal(model(x), whole)
            assert torch.equal(conv_input_part(model, x[:, 3:], 3, bias=conv.bias), part)


def test_auto_decisions_are_kept_per_shape(monkeypatch, never_stopped):
    monkeypatch.setattr(winograd, "MARGIN", 1e9)
    model, _, plan = auto_convs()
    with torch.no_grad():
        for _ in range(2 * winograd.TRIALS):
            model(torch.randn(*BIG))
        decisions, trials = dict(plan.decisions), {k: (list(t.direct), list(t.winograd)) for k, t in plan.trials.items()}
        assert len(decisions) == 1 and len(trials) == 1
        model(torch.randn(*BIG))
        assert plan.decisions == decisions  # reused, not tried again
        assert {k: (t.direct, t.winograd) for k, t in plan.trials.items()} == trials
        assert all(plan.decisions[k] is decisions[k] for k in decisions)
        model(torch.randn(2, 8, 48, 48))  # a new shape: tried on its own
        assert len(plan.trials) == 2 and len(plan.decisions) == 1


def test_auto_stops_a_slow_winograd_trial_and_runs_direct(monkeypatch):
    """A Winograd call past ABORT times the direct time is stopped: that call's output is the
    direct one, the shape lost, and its kernel and workspace are freed."""
    monkeypatch.setattr(winograd, "ABORT", 0.0)
    model, plain, plan = auto_convs()
    x = torch.randn(*BIG)
    with torch.no_grad():
        outputs = [model(x) for _ in range(3)]
    assert all(torch.equal(out, plain(x)) for out in outputs)
    assert [d.winograd for d in plan.decisions.values()] == [False]
    assert plan.kernels() == {} and plan.workspace.nbytes() == 0
    assert len(next(iter(plan.trials.values())).direct) == 1  # decided at the first stopped trial


def test_auto_keeps_small_maps_direct_without_timing():
    model, plain, plan = auto_convs()
    x = torch.randn(1, 8, 40, 48)  # 1920 pixels, under AUTO_MIN_PIXELS
    with torch.no_grad():
        assert torch.equal(model(x), plain(x)) and torch.equal(model(x), plain(x))
    assert not plan.trials and [d.winograd for d in plan.decisions.values()] == [False]
    assert plan.kernels() == {}


def test_auto_keeps_kernels_within_its_budget(monkeypatch, never_stopped):
    """Two convolutions of one shape (one trial) that win, room for one kernel: one keeps
    Winograd (and its kernel), the other runs direct (refused, or evicted by a faster-per-byte
    one). No kernel over KERNEL_SHARE of the budget is tried."""
    monkeypatch.setattr(winograd, "MARGIN", 1e9)
    kernel_bytes = 36 * 8 * 8 * 4
    x = torch.randn(*BIG)
    model, _, plan = auto_convs(budget=kernel_bytes / winograd.KERNEL_SHARE - 1)
    with torch.no_grad():
        model(x)  # a kernel over KERNEL_SHARE of the budget: direct, not even tried
    assert not plan.trials and not any(d.winograd for d in plan.decisions.values())
    monkeypatch.setattr(winograd, "KERNEL_SHARE", 1.0)
    model, plain, plan = auto_convs(count=2, budget=kernel_bytes)
    with torch.no_grad():
        for _ in range(winograd.TRIALS + 1):
            model[0](x), model[1](x)
        outputs = [model[0](x), model[1](x)]
    assert len(plan.trials) == 1 and len(plan.decisions) == 2
    assert sum(d.winograd for d in plan.decisions.values()) == 1
    assert plan.kernel_bytes() == kernel_bytes
    for (name, _, _, _), decision in plan.decisions.items():
        conv = plain[int(name)]
        assert plan.kernels().get((name, 0, 8)) == (kernel_bytes if decision.winograd else None)
        expected = conv3x3(x, transform_weight(conv.weight), conv.bias) if decision.winograd else conv(x)
        assert torch.equal(outputs[int(name)], expected)
    with pytest.raises(ValueError, match="mode"):
        winograd.WinogradPlan("off")


@pytest.mark.parametrize("shape", [(37, 12), (8, 300), (1, 5)])
def test_transform_in_blocks_of_output_channels_is_exact(shape):
    """transform_weight bounds its float64 transient by transforming blocks of output channels:
    every value is computed from one output channel's kernel alone, so the blocks change nothing."""
    torch.manual_seed(0)
    weight = torch.randn(*shape, 3, 3) * 3
    whole = transform_weight(weight, chunk_bytes=2**40)
    for chunk_bytes in (1, 36 * shape[1] * 8 * 5):  # one output channel at a time; 5 at a time
        assert torch.equal(transform_weight(weight, chunk_bytes=chunk_bytes), whole)


def test_auto_decides_nothing_by_timing_on_the_eval_tests_frames(network):
    """With --winograd auto, the eval tests' 48 x 64 frames (e.g. tests/test_sharded_eval.py, whose 1 and 2 processes
    must write byte-identical results) have no map of AUTO_MIN_PIXELS: every decision is
    direct, without a trial, so no process can decide differently."""
    from inference_core.acceleration import accelerate
    from inference_core.core import InferenceCore
    from tests.helpers_core import run_core
    from util.config import PRESETS

    fast = accelerate(copy.deepcopy(network), "cpu", winograd="auto")
    plan = winograd_plan(fast)
    frames = [torch.randn(3, 48, 64) for _ in range(3)]
    mask = torch.zeros(48, 64, dtype=torch.long)
    mask[8:24, 8:24], mask[20:40, 30:60] = 1, 2
    run_core(InferenceCore(fast, PRESETS["davis2017"], "cpu"), frames, {0: (mask, [1, 2])})
    assert plan.mode == "auto" and not plan.trials
    assert not any(d.winograd for d in plan.decisions.values()) and plan.kernels() == {}
