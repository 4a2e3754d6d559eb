"""ResNet trunks of the key and value encoders, with optional ImageNet weights.

* Key encoder: torchvision's ResNet (101 by default) up to layer3, giving
  f4 / f8 / f16 features. Smaller depths are a flag for quick experiments.
* Value trunk: a ResNet-18 up to layer3 whose convolutions carry biases (as in
  the reference checkpoint format) and whose first conv takes RGB plus 1
  (single object) or 2 (mask, other objects) extra channels.
"""
import torch
import torch.nn as nn
import torchvision


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights could not be downloaded or read."""


# (torchvision constructor, weights enum name, channels of f4, f8, f16)
KEY_BACKBONES = {
    "resnet101": ("resnet101", "ResNet101_Weights", (256, 512, 1024)),
    "resnet50": ("resnet50", "ResNet50_Weights", (256, 512, 1024)),
    "resnet18": ("resnet18", "ResNet18_Weights", (64, 128, 256)),
}


def imagenet_state_dict(arch: str):
    """The ImageNet (IMAGENET1K_V1, as the reference) state dict of a torchvision ResNet."""
    weights = getattr(torchvision.models, KEY_BACKBONES[arch][1]).IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True)
    except Exception as error:  # URLError, HTTPError, corrupt cache file, ...
        raise PretrainedWeightsUnavailable(
            f"could not obtain the ImageNet weights of {arch} ({type(error).__name__}: {error}). "
            f"Either construct the network with pretrained=False (training flag --no_pretrained), "
            f"or download {weights.url} by hand into {torch.hub.get_dir()}/checkpoints/") from None


class KeyEncoder(nn.Module):
    """ResNet stem + layer1 (stored as ``res2``) + layer2 + layer3."""

    def __init__(self, arch="resnet101", pretrained=True):
        super().__init__()
        if arch not in KEY_BACKBONES:
            raise ValueError(f"unknown key backbone '{arch}', choose from {sorted(KEY_BACKBONES)}")
        # Without ImageNet weights, zero the last BN scale of every residual block:
        # with BatchNorm frozen (eval mode, as in training) a randomly initialised
        # deep ResNet otherwise grows its activations by orders of magnitude per stage.
        resnet = getattr(torchvision.models, KEY_BACKBONES[arch][0])(weights=None, zero_init_residual=True)
        if pretrained:
            resnet.load_state_dict(imagenet_state_dict(arch))
        self.channels = KEY_BACKBONES[arch][2]
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.res2 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3

    def forward(self, frame):
        x = self.maxpool(self.relu(self.bn1(self.conv1(frame))))
        f4 = self.res2(x)
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4


class BasicBlock(nn.Module):
    """ResNet basic block with biased convolutions."""

    def __init__(self, in_channels, channels, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride), nn.BatchNorm2d(channels))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class ValueTrunk(nn.Module):
    """ResNet-18 stem + layer1..layer3 (256 channels at 1/16) on RGB + mask channels."""

    def __init__(self, extra_channels: int, pretrained=True):
        super().__init__()
        self.conv1 = nn.Conv2d(3 + extra_channels, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        if pretrained:
            self.load_imagenet(imagenet_state_dict("resnet18"))
        else:  # see KeyEncoder: keep random-init activations bounded under frozen BatchNorm
            for layer in (self.layer1, self.layer2, self.layer3):
                for block in layer:
                    nn.init.zeros_(block.bn2.weight)

    @torch.no_grad()
    def load_imagenet(self, state):
        """Copy ImageNet ResNet-18 weights; the mask channels of conv1 are
        initialised orthogonally and the (absent in torchvision) conv biases
        are zeroed so that the pretrained function is kept."""
        own = self.state_dict()
        for name, tensor in state.items():
            if name not in own:
                continue  # layer4 and fc are not part of the trunk
            if name == "conv1.weight":
                extra = torch.empty(tensor.shape[0], own[name].shape[1] - 3, *tensor.shape[2:])
                nn.init.orthogonal_(extra)
                tensor = torch.cat([tensor, extra], dim=1)
            own[name].copy_(tensor)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                module.bias.zero_()

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer3(self.layer2(self.layer1(x)))
