"""Upsampling decoder: readout + query feature at 1/16 to a logit map at full size."""
import torch.nn as nn
import torch.nn.functional as F

from model.blocks import ResBlock, UpsampleBlock


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
