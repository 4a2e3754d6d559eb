"""Winograd F(m x m, 3 x 3) convolution (inference_core/winograd.py): the same numbers as
the direct convolution to float32 rounding, only where it is meant to run."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from inference_core.winograd import WinogradConv2d, conv3x3, transform_weight, use_winograd
from model.decoder import conv_input_part


def reference(x, conv):
    """The convolution in float64: the exact answer to compare float32 paths with."""
    return F.conv2d(x.double(), conv.weight.double(), None if conv.bias is None else conv.bias.double(), padding=1)


@pytest.mark.parametrize("tile", [2, 4])
@pytest.mark.parametrize("shape,out_channels,bias", [
    ((1, 8, 12, 16), 4, True),     # whole tiles
    ((2, 16, 7, 9), 8, True),      # sizes not divisible by the tile: padded and cropped
    ((1, 32, 5, 3), 16, False),
    ((3, 4, 1, 1), 2, True),       # a single pixel
])
def test_conv3x3_equals_the_direct_convolution(tile, shape, out_channels, bias):
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
        got = conv3x3(x, transform_weight(conv.weight, tile), conv.bias, tile, block_pixels=8)
    assert got.shape == exact.shape and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)
    error = (got.double() - exact).abs().max().item()
    # Measured (3 seeds, these shapes and 256 channels): the direct convolution is within
    # 1.4 units, F(2x2) within 0.6 and F(4x4) within 13 (its transforms scale by up to 8).
    assert direct_error <= 2 * unit
    assert error <= (2 if tile == 2 else 32) * unit, (error / unit, direct_error / unit)


def test_wrong_transform_is_caught():
    """The comparison above can fail: a kernel transformed for the wrong tile gives garbage."""
    torch.manual_seed(0)
    x, conv = torch.randn(1, 8, 8, 8), nn.Conv2d(8, 4, 3, padding=1)
    with torch.no_grad():
        weight_t = transform_weight(conv.weight, 4)
        weight_t = weight_t.flip(0)  # transformed points in the wrong order
        error = (conv3x3(x, weight_t, conv.bias, 4).double() - reference(x, conv)).abs().max().item()
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
    assert use_winograd(model, enabled=False) == 2
    assert all(type(m) is not WinogradConv2d for m in model)
    with pytest.raises(ValueError, match="tile"):
        use_winograd(model, tile=3)


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


@pytest.mark.parametrize("flags,expected", [([], True), (["--no_winograd"], False)])
def test_eval_scripts_use_winograd_on_the_cpu_unless_told_not_to(weights, tmp_path, flags, expected):
    import argparse

    from inference_core.cli import add_inference_arguments, core_from_args
    parser = argparse.ArgumentParser()
    add_inference_arguments(parser, "davis2017")
    args = parser.parse_args(["--model", weights, "--output", str(tmp_path), "--device", "cpu"] + flags)
    network = core_from_args(args).network
    converted = [m for m in network.modules() if isinstance(m, WinogradConv2d)]
    assert bool(converted) == expected
    if expected:  # e.g. the gate and the decoder's first block; the 64-channel convolutions stay direct
        assert network.mask in converted and network.decoder.compress.conv1 in converted
        assert network.key_encoder.res2[0].conv1 not in converted and network.key_encoder.layer3[0].conv2 in converted
