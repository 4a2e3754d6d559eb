"""Generic convolutional blocks: residual block, CBAM attention, feature fusion, upsampling."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    """Pre-activation residual block of two 3x3 convs; a 3x3 conv projects the
    shortcut when the channel count changes (named ``downsample`` for
    checkpoint compatibility, although it does not change the resolution)."""

    def __init__(self, in_channels, out_channels=None):
        super().__init__()
        out_channels = out_channels or in_channels
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x):
        residual = self.conv2(F.relu(self.conv1(F.relu(x))))
        if self.downsample is not None:
            x = self.downsample(x)
        return x + residual


class ChannelGate(nn.Module):
    """CBAM channel attention: a shared MLP on average- and max-pooled features."""

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
        )

    def forward(self, x):
        attention = self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1))
        return x * torch.sigmoid(attention)[:, :, None, None]


class _SpatialConv(nn.Module):
    # A wrapper only so that the parameter is named ``spatial.conv`` as in the checkpoint format.
    def __init__(self, kernel_size=7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x):
        return self.conv(x)


class SpatialGate(nn.Module):
    """CBAM spatial attention: a 7x7 conv on the channel-wise max and mean."""

    def __init__(self, kernel_size=7):
        super().__init__()
        self.spatial = _SpatialConv(kernel_size)

    def forward(self, x):
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class CBAM(nn.Module):
    def __init__(self, channels, reduction=16):
        super().__init__()
        self.ChannelGate = ChannelGate(channels, reduction)
        self.SpatialGate = SpatialGate()

    def forward(self, x):
        return self.SpatialGate(self.ChannelGate(x))


class FeatureFusionBlock(nn.Module):
    """Fuses the value trunk's features with the key encoder's f16 of the same frame."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.block1 = ResBlock(in_channels, out_channels)
        self.attention = CBAM(out_channels)
        self.block2 = ResBlock(out_channels, out_channels)

    def forward(self, value_features, key_f16):
        x = self.block1(torch.cat([value_features, key_f16], dim=1))
        x = x + self.attention(x)
        return self.block2(x)


class UpsampleBlock(nn.Module):
    """x2 bilinear upsampling of the coarse features plus a conv of the skip features."""

    def __init__(self, skip_channels, up_channels, out_channels):
        super().__init__()
        self.skip_conv = nn.Conv2d(skip_channels, up_channels, kernel_size=3, padding=1)
        self.out_conv = ResBlock(up_channels, out_channels)

    def forward(self, skip, coarse):
        x = self.skip_conv(skip)
        x = x + F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.out_conv(x)
