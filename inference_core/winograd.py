"""Winograd convolution F(4x4, 3x3) for CPU inference (Lavin and Gray, 2016), used
where it is measured to pay.

The arithmetic (the transforms, the tiled convolution ``conv3x3`` and its reused
``Workspace``) is in inference_core/winograd_conv.py.

``use_winograd`` turns the eligible convolutions of a network (3x3, stride 1, 256+
input and output channels) into ``WinogradConv2d``: the same parameters and state
dict; training, autocast, CUDA, an empty batch and maps under 256 pixels run
``nn.Conv2d`` unchanged. Otherwise the network's ``WinogradPlan`` picks the algorithm:

* ``on``: Winograd for every eligible convolution, every transformed kernel kept
  (the eval scripts' default before it was measured against its memory; reproducible).
* ``off`` (the eval scripts' default, DEFAULT_MODE): none; see DEFAULT_MODE for why.
* ``auto``: decided per convolution, input-channel part
  (the decoder's split convolutions, model/decoder.py) and input shape by a trial of
  its first calls, and kept for the run (``decisions``). Why: the benefit depends on the CPU,
  the load and the shape, and the kernels cost memory. Measured on the 2-core test
  machine: 0.42-0.65 of the direct time on one thread, but 5-10x the direct time
  on two threads of a busy machine (about 150 small elementwise operations per block
  of tiles, each waiting for both threads); kernels for every convolution are 4x
  their weights (585 MiB with the ResNet-18 key encoder, 999 MiB with ResNet-101)
  and took a 24-frame 240x432 clip from 1.1 to 2.0 GiB peak. The rule:

  1. only maps of N x H x W >= AUTO_MIN_PIXELS (the decoder's 1/8 and 1/4 maps of a
     240x432 frame with 2 objects save 2.4-16 ms per call and MiB of kernel, its 1/16
     maps at most 1.3; the tests' small frames stay direct, untimed);
  2. tried once per shape (convolutions of one shape share the trial) on the network's
     own calls: direct, then Winograd (its kernel built first, untimed), TRIALS of each
     in turn, so which algorithm computes which call never depends on timing, only the
     decision does. Winograd is kept if its fastest call takes at most MARGIN of the
     fastest direct one; a Winograd call past ABORT times the direct time is stopped and
     run direct (the shape has lost), so a loss costs at most that, once per shape.
     (The trials were first run on a band of the map with a zero kernel: that one block
     in fresh buffers overstated Winograd's time, and at 480x854 no convolution won
     although the decoder's 1/8 and 1/4 ones take 0.6-0.8 of the direct time.)
  3. the kernels kept fit ``budget`` (BUDGET_FRACTION of the network's weight bytes:
     20 MiB with ResNet-18, 35 MiB with ResNet-101), none over KERNEL_SHARE of it (10 and
     18 MiB: the 256-channel ones' 9 MiB, not the 1536-channel gate's 108 MiB; with 0.2 and
     0.3, which also let the decoder's 512-channel 18 MiB ones in, the peak memory was
     1.07-1.17x plain's, over 15 % at three of the four sizes of docs/speed.md's table);
     when full, a newcomer saving more per call and byte evicts the ones saving less (their
     decisions turn direct), or is refused. Kernels are transformed at their first
     Winograd call, in blocks of output channels (a float64 transient of about 16 MiB),
     so only the ones that run are built; a lost shape's kernels and the workspace go.

The calls of a plan share one ``Workspace`` for their block buffers (the largest call's:
21-47 MiB for the decoder's maps).

Wherever Winograd runs, the numbers are those of ``conv3x3`` with ``transform_weight``
(the same algorithm whichever mode chose it); elsewhere those of ``nn.Conv2d``.
"""
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from inference_core.winograd_conv import Workspace, conv3x3, transform_weight

MODES = ("auto", "on", "off")
# The eval scripts' default on the CPU: off, the reference's direct path, reproducible bit for bit.
# Measured (docs/speed.md, scripts/benchmark_speed_layer.py): on takes 0.83-0.97x the direct time at
# 480x854 but up to 1.15x at 240x432, with 1.4-1.9x the peak memory; auto 0.87-0.95x the time and
# 1.00-1.11x the memory, but its choices (so its outputs' rounding) depend on timing.
DEFAULT_MODE = "off"
MIN_CHANNELS = 256      # eligible: 256+ input and output channels (64-channel ones are slower)
MIN_PIXELS = 256        # no mode runs Winograd on maps of fewer pixels (H x W)
AUTO_MIN_PIXELS = 2048  # auto: N x H x W at least this
MARGIN = 0.85           # auto: Winograd's fastest trial must take at most this fraction of the direct one's
TRIALS = 2              # auto: timed calls of each algorithm per shape
ABORT = 1.5             # auto: a Winograd trial past this multiple of the direct time is stopped (lost)
BUDGET_FRACTION = 0.1   # auto: kernels kept, as a fraction of the network's weight bytes
KERNEL_SHARE = 0.5      # auto: no kernel larger than this share of the budget


@dataclass
class Decision:
    winograd: bool
    direct_s: float = None          # fastest timed direct call (None: not tried)
    winograd_s: float = None        # fastest timed Winograd call (None: none finished)
    evicted: bool = False           # chose Winograd, then lost its kernel to a faster-per-byte one


@dataclass
class Trial:
    """The timed calls of one convolution shape (auto): real calls of the network, direct and
    Winograd in turn (so the order of algorithms, and the numbers, do not depend on timing;
    only the decision does), shared by the convolutions of that shape."""
    direct: list = field(default_factory=list)       # seconds
    winograd: list = field(default_factory=list)
    lost: bool = False                               # a Winograd call was stopped (ABORT)
    owners: set = field(default_factory=set)         # (conv, start, stop) whose kernels the trial built

    def winograd_next(self):
        return len(self.winograd) < len(self.direct)

    def done(self):
        return self.lost or len(self.winograd) == TRIALS

    def won(self):
        return not self.lost and min(self.winograd) <= MARGIN * min(self.direct)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


class WinogradPlan:
    """The algorithm of each eligible convolution of one network, the transformed kernels
    kept and the workspace of their calls (module docstring). ``decisions``: {(conv name,
    start, stop, input shape): Decision} of the auto mode; ``trials``: {(C, K, input shape
    and strides, bias): Trial}; ``kernels()``: {(conv name, start, stop): bytes}."""

    def __init__(self, mode="auto", budget=None):
        if mode not in ("auto", "on"):
            raise ValueError(f"Winograd plan mode must be 'auto' or 'on', got {mode!r}")
        self.mode, self.budget = mode, budget
        self.decisions = {}
        self.trials = {}
        self.workspace = Workspace()
        self._kernels = {}      # (conv, start, stop) -> (weight version, transformed kernel)
        self._reserved = {}     # auto: (conv, start, stop) -> (bytes, seconds saved per call and byte)

    def kernels(self):
        return {(conv.winograd_name, start, stop): kernel.nbytes
                for (conv, start, stop), (_, kernel) in self._kernels.items()}

    def kernel_bytes(self):
        return sum(self.kernels().values())

    def run(self, conv, x, start, stop, bias, direct):
        """The convolution's output by the algorithm chosen for this call (``direct(x)``: nn.Conv2d's)."""
        if self.mode == "on":
            return self._winograd(conv, x, start, stop, bias)
        key = (conv.winograd_name, start, stop, tuple(x.shape))
        decision = self.decisions.get(key)
        if decision is None:
            return self._decide(key, conv, x, start, stop, bias, direct)
        return self._winograd(conv, x, start, stop, bias) if decision.winograd else direct(x)

    def _winograd(self, conv, x, start, stop, bias, deadline=None):
        return conv3x3(x, self._kernel(conv, start, stop), bias, deadline=deadline, workspace=self.workspace)

    def _kernel(self, conv, start, stop):
        """The transformed kernel of input channels start:stop, built at its first use and
        rebuilt when the weight changes (load_state_dict)."""
        weight = conv.weight
        version = (weight._version, weight.data_ptr(), weight.dtype, weight.device)
        entry = self._kernels.get((conv, start, stop))
        if entry is None or entry[0] != version:
            self._kernels.pop((conv, start, stop), None)  # free the old one first
            entry = self._kernels[(conv, start, stop)] = (version, transform_weight(weight[:, start:stop]))
        return entry[1]

    def _decide(self, key, conv, x, start, stop, bias, direct):
        """This call of an undecided convolution (module docstring): a trial call while its
        shape's trial runs, then the decision, kept for the run."""
        owner = (conv, start, stop)
        nbytes = 36 * (stop - start) * conv.out_channels * x.element_size()
        if x.shape[0] * x.shape[2] * x.shape[3] < AUTO_MIN_PIXELS or nbytes > KERNEL_SHARE * self.budget:
            self.decisions[key] = Decision(False)
            return direct(x)
        trial = self.trials.setdefault((stop - start, conv.out_channels, tuple(x.shape), x.stride(),
                                        bias is not None), Trial())
        out = None
        if not trial.done():
            out = self._trial_call(trial, owner, x, bias, direct)
            if not trial.done():
                return out
        won = trial.won() and self._reserve(owner, nbytes, (min(trial.direct) - min(trial.winograd)) / nbytes)
        self.decisions[key] = Decision(won, min(trial.direct), min(trial.winograd, default=None))
        if not won:
            # Its kernel goes; if the shape lost, also those its trial built and the workspace it grew.
            shape_lost = not trial.won()
            for loser in trial.owners | {owner} if shape_lost else {owner}:
                if loser not in self._reserved:
                    self._kernels.pop(loser, None)
            if shape_lost:
                self.workspace.release()
        if out is None:
            out = self._winograd(conv, x, start, stop, bias) if won else direct(x)
        return out

    def _trial_call(self, trial, owner, x, bias, direct):
        """One timed call, direct or Winograd in turn; returns its output. A Winograd call is
        stopped past ABORT times the direct time (the call then runs direct): a loss costs at
        most that once per shape."""
        if not trial.winograd_next():
            out, seconds = _timed(lambda: direct(x))
            trial.direct.append(seconds)
            return out
        conv, start, stop = owner
        self._kernel(conv, start, stop)  # built outside the timing: once per run, not per call
        trial.owners.add(owner)
        limit = ABORT * min(trial.direct)
        out, seconds = _timed(lambda: self._winograd(conv, x, start, stop, bias, time.perf_counter() + limit))
        if out is None:
            trial.lost = True
            return direct(x)
        trial.winograd.append(seconds)
        return out

    def _reserve(self, owner, nbytes, rate):
        """Room in the budget for ``owner``'s kernel, evicting kernels saving less per byte."""
        if owner in self._reserved:
            old_bytes, old_rate = self._reserved[owner]
            self._reserved[owner] = (old_bytes, max(old_rate, rate))
            return True
        free = self.budget - sum(b for b, _ in self._reserved.values())
        victims = []
        for other, (b, r) in sorted(self._reserved.items(), key=lambda item: item[1][1]):
            if free >= nbytes or r >= rate:
                break
            victims.append(other)
            free += b
        if free < nbytes:
            return False
        for conv, start, stop in victims:
            del self._reserved[(conv, start, stop)]
            self._kernels.pop((conv, start, stop), None)
            for key, decision in self.decisions.items():
                if key[:3] == (conv.winograd_name, start, stop) and decision.winograd:
                    decision.winograd, decision.evicted = False, True
        self._reserved[owner] = (nbytes, rate)
        return True


class WinogradConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (3x3, stride 1, padding 1) whose CPU float32 inference calls go
    through its network's ``WinogradPlan`` (``plan``, set by ``use_winograd``)."""
    plan = None
    winograd_name = ""
    min_pixels = MIN_PIXELS

    def applies(self, x):
        return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled("cpu") and x.shape[0] > 0
                and x.shape[-2] * x.shape[-1] >= self.min_pixels)

    def forward(self, x):
        if self.applies(x):
            return self.plan.run(self, x, 0, self.in_channels, self.bias, lambda inp: nn.Conv2d.forward(self, inp))
        return super().forward(x)

    def forward_input_part(self, x, start, stop=None, bias=None):
        """This convolution over its input channels start:stop only, plus ``bias``: one
        term of a convolution split by input channels (model/decoder.py, conv_input_part)."""
        stop = self.in_channels if stop is None else stop

        def direct(inp):
            return F.conv2d(inp, self.weight[:, start:stop], bias, padding=self.padding)

        return self.plan.run(self, x, start, stop, bias, direct) if self.applies(x) else direct(x)


def eligible(conv):
    return (type(conv) in (nn.Conv2d, WinogradConv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def use_winograd(module, mode="on", min_channels=MIN_CHANNELS, min_pixels=MIN_PIXELS, budget=None):
    """Turn the eligible 3x3 convolutions of ``module`` with at least ``min_channels``
    input and output channels into ``WinogradConv2d`` sharing one new ``WinogradPlan``
    of ``mode`` ("off": back to ``nn.Conv2d``), in place. ``budget``: bytes of kernels
    the auto mode keeps (default: BUDGET_FRACTION of the module's weight bytes).
    Returns how many convolutions were changed; ``winograd_plan(module)`` is the plan."""
    if mode not in MODES:
        raise ValueError(f"Winograd mode must be one of {MODES}, got {mode!r}")
    if budget is None:
        budget = BUDGET_FRACTION * sum(p.numel() * p.element_size() for p in module.parameters())
    plan = WinogradPlan(mode, budget) if mode != "off" else None
    changed = 0
    for name, conv in module.named_modules():
        if not eligible(conv):
            continue
        if plan is not None and min(conv.in_channels, conv.out_channels) >= min_channels:
            conv.__class__ = WinogradConv2d
            conv.plan, conv.winograd_name, conv.min_pixels = plan, name, min_pixels
            changed += 1
        elif type(conv) is WinogradConv2d:
            conv.__class__ = nn.Conv2d
            for attribute in ("plan", "winograd_name", "min_pixels"):
                conv.__dict__.pop(attribute, None)
            changed += plan is None
    return changed


def winograd_plan(module):
    """The ``WinogradPlan`` of ``module``'s converted convolutions (None: none converted)."""
    return next((conv.plan for conv in module.modules() if isinstance(conv, WinogradConv2d)), None)
