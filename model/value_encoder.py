"""Value encoder with frame relation.

The value of frame t for an object is the ResNet-18 trunk's features of
(frame t, masks) fused with the key encoder's f16 of frame t, gated by a
sigmoid map computed by the same trunk from (frame t+1, the same masks): the
gate lets the value keep what is consistent with the next frame.
"""
import torch
import torch.nn as nn

from model.backbones import ValueTrunk
from model.blocks import FeatureFusionBlock


def other_objects(masks: torch.Tensor) -> torch.Tensor:
    """For every object, the summed masks of all the other objects: (B, K, H, W)."""
    return masks.sum(dim=1, keepdim=True) - masks


class FrameRelationValueEncoder(ValueTrunk):
    """A ValueTrunk (subclassed so that its layers keep the reference checkpoint's
    names: value_encoder.conv1, value_encoder.layer1, ...) plus fusion and gate."""

    def __init__(self, key_f16_channels=1024, single_object=False, pretrained=True, value_channels=512):
        super().__init__(1 if single_object else 2, pretrained=pretrained)
        self.single_object = single_object
        self.fuser = FeatureFusionBlock(256 + key_f16_channels, value_channels)
        # Frame-relation gate computed from the next frame's trunk features.
        self.mask = nn.Conv2d(256, value_channels, kernel_size=3, padding=1)

    def trunk(self, x):
        return super().forward(x)

    def forward(self, frame, key_f16, masks, next_frame, others=None):
        """frame, next_frame: (B, 3, H, W); key_f16: (B, C16, H/16, W/16);
        masks: (B, K, H, W) object probabilities; others: (B, K, H, W) the other
        objects' summed masks (default: computed from ``masks``, i.e. when
        ``masks`` holds every object). Returns (B, K, C, H/16, W/16)."""
        batch, num_objects = masks.shape[:2]
        mask_channels = masks.unsqueeze(2)  # B, K, 1, H, W
        if not self.single_object:
            others = other_objects(masks) if others is None else others
            mask_channels = torch.cat([mask_channels, others.unsqueeze(2)], dim=2)
        mask_channels = mask_channels.flatten(0, 1)  # BK, 1|2, H, W

        def with_masks(image):
            image = image.unsqueeze(1).expand(-1, num_objects, -1, -1, -1).flatten(0, 1)
            return torch.cat([image, mask_channels], dim=1)

        # One trunk pass over (frame t, frame t+1) for all objects together.
        features = self.trunk(torch.cat([with_masks(frame), with_masks(next_frame)], dim=0))
        # Slices, not chunk(2): chunk's count guard would fix the object count in an ONNX export.
        current, following = features[:batch * num_objects], features[batch * num_objects:]
        key_f16 = key_f16.unsqueeze(1).expand(-1, num_objects, -1, -1, -1).flatten(0, 1)
        value = self.fuser(current, key_f16) * torch.sigmoid(self.mask(following))
        return value.view(batch, num_objects, *value.shape[1:])
