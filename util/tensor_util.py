"""Padding to a multiple of 16 (split evenly on both sides) and exact un-padding."""
import torch.nn.functional as F


def pad_divide_by(x, divisor=16):
    """Pad the last two dims of ``x`` up to multiples of ``divisor``.
    Returns the padded tensor and the (left, right, top, bottom) pad."""
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % divisor, (-width) % divisor
    pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    if pad_h or pad_w:
        x = F.pad(x, pad)
    return x, pad


def unpad(x, pad):
    left, right, top, bottom = pad
    height, width = x.shape[-2:]
    return x[..., top:height - bottom, left:width - right]
