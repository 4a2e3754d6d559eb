"""Upsampling decoder: readout + query feature at 1/16 to a logit map at full size."""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from model.blocks import ResBlock, UpsampleBlock


@dataclass
class PreparedQuery:
    """The decoder's work that depends on the query frame only (``Decoder.prepare``)."""
    query_conv1: torch.Tensor   # compress.conv1's share of the query-feature input channels (+ bias)
    query_shortcut: torch.Tensor  # compress.downsample's share (+ bias)
    skip8: torch.Tensor         # up_16_8.skip_conv(f8)
    skip4: torch.Tensor         # up_8_4.skip_conv(f4)


def conv_input_part(conv, x, start, stop=None, bias=None):
    """``conv`` over its input channels start:stop only (stop None: to the last; x
    holds exactly those channels), plus ``bias``: one term of a convolution split by
    input channels."""
    return F.conv2d(x, conv.weight[:, start:stop], bias, padding=conv.padding)


def _upsample_to(x, like):
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class Decoder(nn.Module):
    def __init__(self, f8_channels=512, f4_channels=256, in_channels=1024):
        super().__init__()
        self.compress = ResBlock(in_channels, 512)
        self.up_16_8 = UpsampleBlock(f8_channels, 512, 256)
        self.up_8_4 = UpsampleBlock(f4_channels, 256, 256)
        self.pred = nn.Conv2d(256, 1, kernel_size=3, padding=1)

    def forward(self, x, f8, f4):
        """x: (N, 1024, H/16, W/16), f8/f4: skip features of the same N -> (N, 1, H, W) logits."""
        x = self.compress(x)
        x = self.up_16_8(f8, x)
        x = self.up_8_4(f4, x)
        x = self.pred(F.relu(x))
        return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)

    # Inference with N objects on one frame: ``forward`` on [readout_k, query] for
    # every k runs the skip convolutions N times on the same f8/f4, and the first
    # block's convolutions over the query half of its input N times. Convolution is
    # linear in its input channels, so conv([r, q]) = conv_r(r) + conv_q(q) + bias
    # (relu acts channel-wise, so it splits too): the query terms are computed once.
    def prepare(self, query_feature, f8, f4):
        """query_feature (1, Cq, h, w), f8, f4 of one frame -> PreparedQuery."""
        block, split = self.compress, self.compress.conv1.in_channels - query_feature.shape[1]
        if block.downsample is None:
            raise ValueError("the decoder's first block must project its input (in_channels != 512)")
        return PreparedQuery(
            conv_input_part(block.conv1, F.relu(query_feature), split, bias=block.conv1.bias),
            conv_input_part(block.downsample, query_feature, split, bias=block.downsample.bias),
            self.up_16_8.skip_conv(f8), self.up_8_4.skip_conv(f4))

    def decode(self, readout, prepared: PreparedQuery):
        """readout (N, Cr, h, w) of N objects of the prepared frame -> (N, 1, H, W) logits,
        equal to ``forward(cat([readout, query]), f8, f4)`` up to float rounding."""
        block, split = self.compress, readout.shape[1]
        hidden = conv_input_part(block.conv1, F.relu(readout), 0, split) + prepared.query_conv1
        residual = block.conv2(F.relu(hidden))
        x = conv_input_part(block.downsample, readout, 0, split) + prepared.query_shortcut
        x = x + residual
        x = self.up_16_8.out_conv(prepared.skip8 + _upsample_to(x, prepared.skip8))
        x = self.up_8_4.out_conv(prepared.skip4 + _upsample_to(x, prepared.skip4))
        x = self.pred(F.relu(x))
        return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
