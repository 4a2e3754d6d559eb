"""The network: checkpoint format, shapes, probabilities, gradients, learning."""
import math
import pathlib
import urllib.error

import pytest
import torch

from model import backbones
from model.aggregate import soft_aggregate, soft_aggregate_logits
from model.checkpoint import CheckpointError, load_network_weights, read_checkpoint
from model.memory_readout import MemoryRecord, l2_affinity
from model.network import IMSFR
from model.positional import sinusoidal_encoding
from training.losses import BootstrappedCE, IMSFRLoss, bootstrap_fraction
from util.tensor_util import pad_divide_by, unpad

REFERENCE_KEYS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "reference" / "state_dict_keys.txt"


def reference_shapes():
    shapes = {}
    for line in REFERENCE_KEYS.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split()
        shapes[name] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return shapes


@pytest.fixture(scope="module")
def multi_net():
    torch.manual_seed(0)
    return IMSFR(single_object=False, pretrained=False)


@pytest.fixture(scope="module")
def single_net():
    torch.manual_seed(1)
    return IMSFR(single_object=True, pretrained=False)


def shapes_of(net):
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.skipif(not REFERENCE_KEYS.exists(), reason="shared/reference not beside the checkout")
def test_state_dict_equals_reference_format(multi_net, single_net):
    expected = reference_shapes()
    for mode in ("train", "eval"):  # the same network serves training and inference
        getattr(multi_net, mode)()
        assert shapes_of(multi_net) == expected
        assert list(multi_net.state_dict()) == list(expected)
    assert sum(p.numel() for p in multi_net.parameters()) == 91_844_420
    single = shapes_of(single_net)
    diff = {k for k in expected if expected[k] != single[k]}
    assert set(single) == set(expected) and diff == {"value_encoder.conv1.weight"}
    assert single["value_encoder.conv1.weight"] == (64, 4, 7, 7)


def test_reference_state_dict_loads_strict(multi_net):
    fresh = IMSFR(single_object=False, pretrained=False)
    state = {k: torch.randn(v.shape) if v.is_floating_point() else v for k, v in multi_net.state_dict().items()}
    assert load_network_weights(fresh, state) == []
    assert torch.equal(fresh.state_dict()["decoder.pred.weight"], state["decoder.pred.weight"])
    # DDP prefixes and full training checkpoints are accepted too.
    load_network_weights(fresh, {"network": {"module." + k: v for k, v in state.items()}})


def test_batchnorm_stays_frozen_in_training(multi_net):
    multi_net.train()
    assert multi_net.training
    assert all(not m.training for m in multi_net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def make_batch(num_objects, height, width, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(batch, 3, 3, height, width, generator=g)
    cls = torch.zeros(batch, 3, height, width, dtype=torch.long)
    for k in range(1, num_objects + 1):  # one box per object, moving one pixel per frame
        top, left = 4 + 9 * (k - 1), 5 + 7 * (k - 1)
        for t in range(3):
            cls[:, t, top + t:top + t + 12, left + t:left + t + 15] = k
    first = torch.stack([(cls[:, 0] == k).float() for k in range(1, num_objects + 1)], dim=1)
    selector = torch.ones(batch, num_objects)
    return frames, first, cls, selector


@pytest.mark.parametrize("num_objects", [1, 2, 3])
def test_training_forward_shapes_and_probabilities(multi_net, single_net, num_objects):
    net = single_net if num_objects == 1 else multi_net
    height, width = 50, 70  # not multiples of 16
    frames, first, _, selector = make_batch(num_objects, height, width)
    with torch.no_grad():
        out = net.eval()(frames, first, selector)
    for logits, masks in zip(out["logits"], out["masks"]):
        assert logits.shape == (2, num_objects + 1, height, width)
        assert masks.shape == (2, num_objects, height, width)
        total = torch.softmax(logits, dim=1).sum(dim=1)
        assert torch.allclose(total, torch.ones_like(total), atol=1e-5)
        assert masks.min() >= 0 and masks.max() <= 1


@pytest.mark.parametrize("num_objects", [1, 2, 3])
def test_inference_path_shapes_and_probabilities(multi_net, num_objects):
    """Encoders + segment with padding to 16 and exact un-padding."""
    net = multi_net.eval()
    height, width = 45, 67
    frames, first, _, _ = make_batch(num_objects, height, width, batch=1)
    padded, pad = pad_divide_by(frames[0])          # 3 frames, 3, H', W'
    masks, _ = pad_divide_by(first)
    with torch.no_grad():
        key, f16, f8, f4 = net.encode_key(padded)
        value, pos_value = net.encode_value(padded[:1], f16[:1], masks, padded[1:2])
        assert value.shape == pos_value.shape == (1, num_objects, 512, 48 // 16, 80 // 16)
        memory = MemoryRecord(key[:1].unsqueeze(2), value.unsqueeze(3), key[:1].unsqueeze(2), value.unsqueeze(3),
                              key[:1].unsqueeze(2), pos_value.unsqueeze(3))
        logits, prob = net.segment(key[1:2], f8[1:2], f4[1:2], memory)
    prob_all = unpad(torch.softmax(logits, dim=1), pad)
    assert prob_all.shape == (1, num_objects + 1, height, width)
    assert torch.allclose(prob_all.sum(1), torch.ones(1, height, width), atol=1e-5)


def test_training_step_gradients_and_learning():
    torch.manual_seed(0)
    net = IMSFR(single_object=False, pretrained=False).train()
    frames, first, cls, selector = make_batch(2, 48, 48)
    selector[1, 1] = 0  # second sample has one object only: two-class loss
    cls[1][cls[1] == 2] = 0
    first[1, 1] = 0
    criterion = IMSFRLoss()
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-4)
    losses = []
    for step in range(4):
        result = criterion(net(frames, first, selector), cls, selector, iteration=0)
        optimizer.zero_grad()
        result["total_loss"].backward()
        if step == 0:
            assert torch.isfinite(result["total_loss"])
            without = [n for n, p in net.named_parameters() if p.grad is None]
            assert without == []  # so DDP needs no find_unused_parameters
        optimizer.step()
        losses.append(result["total_loss"].item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_single_object_network_freezes_unused_second_gate(single_net):
    assert not single_net.mask2.weight.requires_grad
    assert all(p.requires_grad for n, p in single_net.named_parameters() if not n.startswith("mask2"))


def test_checkpoint_errors(tmp_path, single_net):
    net = IMSFR(single_object=False, pretrained=False)
    state = net.state_dict()
    wrong = dict(state)
    wrong["key_comp.weight"] = torch.zeros(256, 1024, 3, 3)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*key_comp.weight"):
        load_network_weights(net, wrong)
    missing = {k: v for k, v in state.items() if not k.startswith("decoder.pred")}
    with pytest.raises(CheckpointError, match=r"missing keys: decoder.pred.bias, decoder.pred.weight"):
        load_network_weights(net, missing)
    extra = dict(state, **{"extra.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unexpected keys: extra.weight"):
        load_network_weights(net, extra)
    text = tmp_path / "notes.txt"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=r"notes.txt: not a readable PyTorch checkpoint"):
        load_network_weights(net, text)
    with pytest.raises(CheckpointError, match="not found"):
        load_network_weights(net, tmp_path / "absent.pth")
    with pytest.raises(CheckpointError, match="multi-object weights"):
        load_network_weights(single_net, state)


class NotATensor:
    pass


def test_checkpoint_is_loaded_with_weights_only(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"network": NotATensor()}, path)  # arbitrary objects must not be unpickled
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)


def test_stage0_checkpoint_upgrades_to_multi_object(tmp_path, single_net):
    path = tmp_path / "stage0.pth"
    torch.save(single_net.state_dict(), path)
    multi = IMSFR(single_object=False, pretrained=False)
    notes = load_network_weights(multi, path)
    assert "upgraded" in notes[0]
    new = multi.state_dict()["value_encoder.conv1.weight"]
    old = single_net.state_dict()["value_encoder.conv1.weight"]
    assert new.shape == (64, 5, 7, 7)
    assert torch.equal(new[:, :4], old)
    extra = new[:, 4].reshape(64, -1)  # 64 x 49, orthogonal rows (49 < 64: orthonormal columns)
    assert torch.allclose(extra.T @ extra, torch.eye(49), atol=1e-4)
    assert torch.equal(multi.state_dict()["decoder.pred.weight"], single_net.state_dict()["decoder.pred.weight"])


def test_missing_imagenet_weights_give_a_clear_message(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(backbones.torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__,
                        "get_state_dict", offline)
    with pytest.raises(backbones.PretrainedWeightsUnavailable, match=r"resnet18.*pretrained=False"):
        backbones.KeyEncoder("resnet18", pretrained=True)


def test_l2_affinity_softmax_equals_negative_squared_distance():
    g = torch.Generator().manual_seed(0)
    mk, qk = torch.randn(1, 8, 2, 3, 3, generator=g), torch.randn(1, 8, 3, 3, generator=g)
    dist = ((mk.flatten(2)[:, :, :, None] - qk.flatten(2)[:, :, None, :]) ** 2).sum(1)  # 1, 18, 9
    expected = torch.softmax(-dist / math.sqrt(8), dim=1)
    assert torch.allclose(torch.softmax(l2_affinity(mk, qk), dim=1), expected, atol=1e-6)


def test_soft_aggregation_known_values():
    prob = torch.tensor([0.5, 0.5]).view(1, 2, 1, 1)
    # background = 0.25: odds 1/3, 1, 1 -> 1/7, 3/7, 3/7
    assert torch.allclose(soft_aggregate(prob).flatten(), torch.tensor([1 / 7, 3 / 7, 3 / 7]))
    assert torch.isfinite(soft_aggregate_logits(torch.tensor([1.0, 0.0]).view(1, 2, 1, 1).half())).all()


def test_sinusoidal_encoding_order():
    x = torch.tensor([0.5, -1.0]).view(1, 2, 1, 1)
    encoded = sinusoidal_encoding(x, num_frequencies=2).flatten()
    expected = [0.5, -1.0, math.sin(0.5), math.sin(-1.0), math.cos(0.5), math.cos(-1.0),
                math.sin(1.0), math.sin(-2.0), math.cos(1.0), math.cos(-2.0)]
    assert torch.allclose(encoded, torch.tensor(expected))


def test_bootstrap_schedule_and_top_p():
    assert bootstrap_fraction(0, 20_000, 70_000, 0.15) == 1.0
    assert bootstrap_fraction(45_000, 20_000, 70_000, 0.15) == pytest.approx(0.575)
    assert bootstrap_fraction(90_000, 20_000, 70_000, 0.15) == 0.15
    logits = torch.zeros(1, 2, 1, 4)
    logits[0, 1, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0])
    target = torch.ones(1, 1, 4, dtype=torch.long)
    pixel = torch.nn.functional.cross_entropy(logits, target, reduction="none").flatten()
    loss, p = BootstrappedCE(0, 10, 0.5)(logits, target, iteration=10)  # keep the 2 hardest of 4
    assert p == 0.5 and loss.item() == pytest.approx(pixel[:2].mean().item())


def test_batchnorm_can_learn_statistics_when_asked():
    net = IMSFR(single_object=False, pretrained=False, key_backbone="resnet18", freeze_bn=False).train()
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.training for m in norms)
    assert not any(m.training for m in net.eval().modules() if isinstance(m, torch.nn.BatchNorm2d))
