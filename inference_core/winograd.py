"""Winograd convolution F(4x4, 3x3) for CPU inference (Lavin and Gray, 2016), used
where it is measured to pay.

A 3x3 convolution (stride 1, padding 1) computed tile by tile: every 4x4 block of
outputs is A^T [ (G g G^T) . (B^T d B) ] A, where d is the 6x6 input tile, g the
3x3 kernel and "." the elementwise product summed over input channels: 36 matrix
products of (tiles x C) by (C x K), 2.25 multiply-adds per output and channel pair
instead of 9. The transforms are additions and a few scalings, done with torch's
elementwise operations on blocks of tile rows that stay in cache. Rounding: within
13 float32 units (eps) of the sums' scale max(|w| * |x|), the direct convolution
1.4 (its transforms scale by up to 8; tests/test_winograd.py checks against float64).

``use_winograd`` turns the eligible convolutions of a network (3x3, stride 1, 256+
input and output channels) into ``WinogradConv2d``: the same parameters and state
dict; training, autocast, CUDA, an empty batch and maps under 256 pixels run
``nn.Conv2d`` unchanged. Otherwise the network's ``WinogradPlan`` picks the algorithm:

* ``on``: Winograd for every eligible convolution, every transformed kernel kept
  (the eval scripts' default before it was measured against its memory; reproducible).
* ``off`` (the eval scripts' default, DEFAULT_MODE): none; see DEFAULT_MODE for why.
* ``auto``: decided per convolution, input-channel part
  (the decoder's split convolutions, model/decoder.py) and input shape at its first
  call, and kept for the run (``decisions``). Why: the benefit depends on the CPU,
  the load and the shape, and the kernels cost memory. Measured on the 2-core test
  machine: 0.42-0.65 of the direct time on one thread, but 5-10x the direct time
  on two threads of a busy machine (about 150 small elementwise operations per block
  of tiles, each waiting for both threads); kernels for every convolution are 4x
  their weights (585 MiB with the ResNet-18 key encoder, 999 MiB with ResNet-101)
  and took a 24-frame 240x432 clip from 1.1 to 2.0 GiB peak. The rule:

  1. only maps of N x H x W >= AUTO_MIN_PIXELS (the decoder's 1/8 and 1/4 maps of a
     240x432 frame with 2 objects save 2.4-16 ms per call and MiB of kernel, its 1/16
     maps at most 1.3; the tests' small frames stay direct, untimed);
  2. timed once per shape (convolutions of one shape share it): the call's own direct
     output, then up to TRIALS pairs on a band of about TRIAL_PIXELS pixels, Winograd
     with a zero kernel; it must take at most MARGIN of the direct time in every pair,
     and is stopped (the trial ended) once it has lost, so a loss costs under one
     direct call;
  3. the kernels kept fit ``budget`` (BUDGET_FRACTION of the network's weight bytes:
     69 MiB with ResNet-18, 123 MiB with ResNet-101; with a Winograd call's workspace
     of up to ~100 MiB this stays under 15 % of the peak memory without Winograd,
     1.1-1.9 GiB), none over KERNEL_SHARE of it (21 and 37 MiB: a larger one would
     crowd out several saving more per byte, and its trial alone needs that much; the
     1536-channel gate's is 108 MiB); when full, a newcomer saving more per call and
     byte evicts the ones saving less (their decisions turn direct), or is refused.
     Kernels are transformed at their first Winograd call, in blocks of output channels
     (a float64 transient of about 16 MiB), so only the ones that run are built.

Wherever Winograd runs, the numbers are those of ``conv3x3`` with ``transform_weight``
(the same algorithm whichever mode chose it); elsewhere those of ``nn.Conv2d``.
"""
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

TILE = 4
# B^T, G, A^T of F(4x4, 3x3): 6x6 input tiles, 4x4 output tiles.
_BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
_G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
_AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def _nonzero(matrix):
    """Per row: [(coefficient, column)] of its nonzero entries."""
    return [[(float(c), j) for j, c in enumerate(row) if c != 0] for row in matrix]


_INPUT_TERMS, _OUTPUT_TERMS = _nonzero(_BT), _nonzero(_AT)


def transform_weight(weight, chunk_bytes=2**24):
    """(K, C, 3, 3) kernel -> (36, C, K) transformed kernel, computed in float64, for
    blocks of output channels whose float64 result takes about ``chunk_bytes`` (this
    bounds the transient memory; every value is a 3 x 3-term sum over one output
    channel's kernel, which blocks do not split: the same values in one block or many,
    tests/test_winograd.py)."""
    out_channels, channels = weight.shape[:2]
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    out = weight.new_empty(36, channels, out_channels)
    step = max(1, chunk_bytes // (36 * channels * 8))
    for k in range(0, out_channels, step):
        u = torch.einsum("pa,kcab,qb->pqck", g, weight[k:k + step].detach().double(), g)
        out[:, :, k:k + step].view(6, 6, channels, -1).copy_(u)  # rounded to float32 as it is copied
    return out


def _combine(terms, inputs, out):
    """out = sum of coefficient * inputs[index] over ``terms``."""
    (c0, j0), rest = terms[0], terms[1:]
    if c0 == 1:
        out.copy_(inputs[j0])
    else:
        torch.mul(inputs[j0], c0, out=out)
    for c, j in rest:
        out.add_(inputs[j], alpha=c)
    return out


def conv3x3(x, weight_t, bias=None, block_pixels=8192, deadline=None):
    """3x3 convolution, stride 1, padding 1, of x (N, C, H, W) with a kernel from
    ``transform_weight``; returns (N, K, H, W) in channels-last layout.
    ``block_pixels``: about how many output pixels each block of tile rows holds.
    ``deadline`` (a time.perf_counter() value, for timing trials): None once it is passed."""
    batch, channels, height, width = x.shape
    m, size = TILE, TILE + 2
    out_channels = weight_t.shape[2]
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    padded_w = m * tiles_w + 2
    out = x.new_empty(batch, tiles_h, m, tiles_w, m, out_channels)
    rows = max(1, min(tiles_h, block_pixels // (batch * tiles_w * m * m)))
    pad_buf = x.new_empty(batch, m * rows + 2, padded_w, channels)
    row_buf = x.new_empty(batch, rows, padded_w, channels)
    v_buf = x.new_empty(size, size, batch, rows, tiles_w, channels)
    m_buf = x.new_empty(size * size, batch * rows * tiles_w, out_channels)
    r_buf = x.new_empty(size, batch, rows, tiles_w, out_channels)
    for top in range(0, tiles_h, rows):
        n = min(rows, tiles_h - top)
        # The block's input rows, NHWC with a zero border of 1 (more at the bottom/right to
        # fill the last tiles); only the border is zeroed (F.pad would fill the whole buffer).
        block, first = pad_buf[:, :m * n + 2], m * top - 1  # block row 0 is input row ``first``
        low, high = max(first, 0), min(first + m * n + 2, height)
        block[:, low - first:high - first, 1:width + 1].copy_(x[:, :, low:high].permute(0, 2, 3, 1))
        for border in (block[:, :low - first], block[:, high - first:], block[:, :, :1], block[:, :, width + 1:]):
            border.zero_()
        tile_rows = [block[:, a:a + m * n:m] for a in range(size)]     # (N, n, Wp, C) each
        for p in range(size):
            if deadline is not None and time.perf_counter() > deadline:
                return None
            row = _combine(_INPUT_TERMS[p], tile_rows, row_buf[:, :n])  # B^T along rows, then columns
            tile_cols = [row[:, :, b:b + m * tiles_w:m] for b in range(size)]
            for q in range(size):
                _combine(_INPUT_TERMS[q], tile_cols, v_buf[p, q, :, :n])
        v = v_buf[:, :, :, :n].reshape(size * size, -1, channels)
        prod = torch.bmm(v, weight_t, out=m_buf[:, :v.shape[1]])
        prod = prod.view(size, size, batch, n, tiles_w, out_channels)
        for a in range(m):
            if deadline is not None and time.perf_counter() > deadline:
                return None
            r = _combine(_OUTPUT_TERMS[a], prod, r_buf[:, :, :n])       # A^T along rows, then columns
            for b in range(m):
                _combine(_OUTPUT_TERMS[b], r, out[:, top:top + n, a, :, b])
    y = out.view(batch, m * tiles_h, m * tiles_w, out_channels)[:, :height, :width]
    if bias is not None:
        # In place where nothing is cropped: no second output-sized buffer.
        y = y.add_(bias) if (height, width) == (m * tiles_h, m * tiles_w) else y + bias
    else:
        y = y.contiguous()
    return y.permute(0, 3, 1, 2)


MODES = ("auto", "on", "off")
# The eval scripts' default on the CPU: off. Measured (docs/speed.md, scripts/benchmark_speed_layer.py):
# auto took 1.07-1.13x the direct time (its trials cost more than they saved over short videos),
# on 0.81-0.84x at 480x854 but 1.05-1.12x at 240x432, with 1.4-1.8x the peak memory.
DEFAULT_MODE = "off"
MIN_CHANNELS = 256      # eligible: 256+ input and output channels (64-channel ones are slower)
MIN_PIXELS = 256        # no mode runs Winograd on maps of fewer pixels (H x W)
AUTO_MIN_PIXELS = 2048  # auto: N x H x W at least this
MARGIN = 0.8            # auto: Winograd must take at most this fraction of the direct time
TRIALS = 3              # auto: timed pairs
TRIAL_PIXELS = 8192     # auto: timed on a band of the map with about this many pixels (N x H x W)
BUDGET_FRACTION = 0.35  # auto: kernels kept, as a fraction of the network's weight bytes
KERNEL_SHARE = 0.3      # auto: no kernel larger than this share of the budget


@dataclass
class Decision:
    winograd: bool
    direct_s: float = None          # median of the timed direct calls (None: not tried)
    winograd_s: float = None        # median of the timed Winograd calls
    evicted: bool = False           # chose Winograd, then lost its kernel to a faster-per-byte one


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _time_both(x, channels, out_channels, bias, direct):
    """(direct(x), (direct s, Winograd s, whether Winograd won)): the call's direct output,
    then up to TRIALS pairs (the first direct time is that call's) on a band of the first rows
    of x with about TRIAL_PIXELS pixels (one Winograd block; both algorithms take time in
    proportion to the pixels beyond it), medians. Winograd wins if it takes at most MARGIN
    of the direct time in every pair; it is stopped, and the trial ended, once it has lost
    (on a busy machine it can take 10x the direct time)."""
    rows = min(x.shape[2], -(-TRIAL_PIXELS // (x.shape[0] * x.shape[3])))
    band = x if rows == x.shape[2] else x[:, :, :rows].clone()  # dense, in x's memory format
    trial = x.new_zeros(36, channels, out_channels)  # the timing does not depend on the values
    out, seconds = _timed(lambda: direct(x))
    direct_s, winograd_s = [seconds * rows / x.shape[2]], []
    for i in range(TRIALS):
        if i:
            direct_s.append(_timed(lambda: direct(band))[1])
        deadline = time.perf_counter() + MARGIN * direct_s[-1]
        done, seconds = _timed(lambda: conv3x3(band, trial, bias, deadline=deadline))
        winograd_s.append(seconds)
        if done is None or seconds > MARGIN * direct_s[-1]:
            break
    won = len(winograd_s) == TRIALS and all(w <= MARGIN * d for d, w in zip(direct_s, winograd_s))
    return out, (sorted(direct_s)[len(direct_s) // 2], sorted(winograd_s)[len(winograd_s) // 2], won)


class WinogradPlan:
    """The algorithm of each eligible convolution of one network, and the transformed
    kernels kept (module docstring). ``decisions``: {(conv name, start, stop, input
    shape): Decision} of the auto mode; ``kernels()``: {(conv name, start, stop): bytes}."""

    def __init__(self, mode="auto", budget=None):
        if mode not in ("auto", "on"):
            raise ValueError(f"Winograd plan mode must be 'auto' or 'on', got {mode!r}")
        self.mode, self.budget = mode, budget
        self.decisions = {}
        self.timings = {}       # auto: (C, K, input shape and strides, bias) -> (direct s, Winograd s, won)
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
            return conv3x3(x, self._kernel(conv, start, stop), bias)
        key = (conv.winograd_name, start, stop, tuple(x.shape))
        decision = self.decisions.get(key)
        if decision is None:
            return self._decide(key, conv, x, start, stop, bias, direct)
        if decision.winograd:
            return conv3x3(x, self._kernel(conv, start, stop), bias)
        return direct(x)

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
        """Decide on this call (module docstring); returns the direct output."""
        nbytes = 36 * (stop - start) * conv.out_channels * x.element_size()
        if x.shape[0] * x.shape[2] * x.shape[3] < AUTO_MIN_PIXELS or nbytes > KERNEL_SHARE * self.budget:
            self.decisions[key] = Decision(False)
            return direct(x)
        # Timed once per convolution shape (convolutions of the same shape share it).
        shape = (stop - start, conv.out_channels, tuple(x.shape), x.stride(), bias is not None)
        times = self.timings.get(shape)
        if times is None:
            out, times = _time_both(x, stop - start, conv.out_channels, bias, direct)
            self.timings[shape] = times
        else:
            out = direct(x)
        direct_s, winograd_s, won = times
        won = won and self._reserve((conv, start, stop), nbytes, (direct_s - winograd_s) / nbytes)
        self.decisions[key] = Decision(won, direct_s, winograd_s)
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
