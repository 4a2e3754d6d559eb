"""Reading network weights: untrusted files, clear errors, stage-0 upgrade.

Accepted inputs: a state dict in the reference format (what IMSFR.state_dict()
writes), a full training checkpoint of this project or of the reference
(the weights under 'network'), optionally with DDP's 'module.' prefixes.
"""
import os

import torch
import torch.nn as nn

FIRST_VALUE_CONV = "value_encoder.conv1.weight"


class CheckpointError(ValueError):
    """A checkpoint that does not fit the network; the message says why."""


def read_checkpoint(path, map_location="cpu"):
    """``torch.load`` with ``weights_only=True`` (a checkpoint is untrusted input)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    if os.path.getsize(path) == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty (0 bytes; an interrupted copy or download?)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({_first_line(error)})") from None


def _first_line(error):
    """``Type: first line of the message`` (at most 200 characters), also for an empty message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def extract_state_dict(obj, source="checkpoint"):
    """The network weights inside a loaded checkpoint object."""
    if isinstance(obj, dict) and isinstance(obj.get("network"), dict):
        obj = obj["network"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{source}: does not contain a network state dict")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def upgrade_single_to_multi(state, generator=None):
    """Stage-0 (single-object) weights to the multi-object network: the value
    encoder's first conv gets a fifth input channel (other objects' masks),
    orthogonally initialised as in the reference."""
    weight = state[FIRST_VALUE_CONV]
    extra = torch.empty(weight.shape[0], 1, *weight.shape[2:], dtype=weight.dtype)
    nn.init.orthogonal_(extra, generator=generator)
    state = dict(state)
    state[FIRST_VALUE_CONV] = torch.cat([weight, extra], dim=1)
    return state


def _summarise(names, limit=8):
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def load_network_weights(network: nn.Module, source, generator=None):
    """Load weights from a path or a state dict into ``network`` (strict).

    A single-object checkpoint is upgraded when the network is multi-object.
    Missing keys, unexpected keys and shape mismatches raise CheckpointError
    naming them. Returns the list of notes (e.g. the upgrade) for logging.
    """
    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "state dict"
    obj = read_checkpoint(source) if isinstance(source, (str, os.PathLike)) else source
    state = extract_state_dict(obj, name)
    expected = network.state_dict()
    notes = []
    if FIRST_VALUE_CONV in state and FIRST_VALUE_CONV in expected:
        have, want = state[FIRST_VALUE_CONV].shape[1], expected[FIRST_VALUE_CONV].shape[1]
        if have == 4 and want == 5:
            state = upgrade_single_to_multi(state, generator)
            notes.append("upgraded single-object value encoder (4 input channels) to multi-object (5)")
        elif have == 5 and want == 4:
            raise CheckpointError(f"{name}: multi-object weights cannot be loaded into a single-object network")
    missing = set(expected) - set(state)
    unexpected = set(state) - set(expected)
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                  for k in expected if k in state and state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_summarise(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatch (checkpoint vs network): {_summarise(mismatched)}")
    if problems:
        raise CheckpointError(f"{name}: does not fit this network; " + "; ".join(problems))
    network.load_state_dict(state, strict=True)
    return notes


def network_config_from_state(state):
    """The IMSFR constructor arguments that fit a state dict: single/multi object
    from the value encoder's first conv, key backbone from the key encoder's depth."""
    conv = state.get(FIRST_VALUE_CONV)
    if conv is None or conv.dim() != 4 or conv.shape[1] not in (4, 5):
        raise CheckpointError(f"state dict has no usable '{FIRST_VALUE_CONV}'")
    layer3_blocks = {int(k.split(".")[2]) for k in state if k.startswith("key_encoder.layer3.")}
    bottleneck = "key_encoder.res2.0.conv3.weight" in state
    if not layer3_blocks:
        raise CheckpointError("state dict has no key encoder layer3")
    depth = len(layer3_blocks)
    backbone = {(True, 23): "resnet101", (True, 6): "resnet50", (False, 2): "resnet18"}.get((bottleneck, depth))
    if backbone is None:
        raise CheckpointError(f"unknown key encoder (layer3 with {depth} blocks)")
    return dict(single_object=conv.shape[1] == 4, key_backbone=backbone)


def build_network(source, device="cpu", single_object=None):
    """An IMSFR network (eval mode, on ``device``) with the weights of ``source``
    (path or state dict), its configuration read from the weights. A stage-0
    checkpoint is upgraded when ``single_object=False`` is asked for."""
    from model.network import IMSFR

    name = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "state dict"
    obj = read_checkpoint(source) if isinstance(source, (str, os.PathLike)) else source
    state = extract_state_dict(obj, name)
    try:
        config = network_config_from_state(state)
    except CheckpointError as error:
        raise CheckpointError(f"{name}: {error}") from None
    if single_object is not None:
        config["single_object"] = single_object
    network = IMSFR(pretrained=False, **config)
    load_network_weights(network, state)
    return network.to(device).eval()
