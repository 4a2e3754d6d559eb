"""IMSFR: the whole network, one definition for training and inference.

Shapes: B batch, K objects, T memory frames, C channels, (h, w) = (H/16, W/16).
Keys are shared by all objects: (B, 512, T, h, w). Values are per object:
(B, K, 512, T, h, w). Frames passed to the encoders must have H and W divisible
by 16 (``util.tensor_util.pad_divide_by`` pads them; ``forward`` pads itself the same way).
"""
import torch
import torch.nn as nn

from model.aggregate import soft_aggregate_logits
from model.backbones import KeyEncoder
from model.decoder import Decoder
from model.memory_readout import MemoryRecord, l2_affinity, read_memory
from model.positional import sinusoidal_encoding
from model.value_encoder import FrameRelationValueEncoder
from util.tensor_util import pad_divide_by, unpad

KEY_CHANNELS = 512
VALUE_CHANNELS = 512
NUM_FREQUENCIES = 6


class IMSFR(nn.Module):
    def __init__(self, single_object=False, pretrained=True, key_backbone="resnet101", freeze_bn=True):
        super().__init__()
        self.single_object = single_object
        # The reference keeps BatchNorm in eval mode while training (fine-tuning from
        # ImageNet with small batches). Training from scratch may let it learn
        # statistics instead (freeze_bn=False); this does not change the weights' format.
        self.freeze_bn = freeze_bn
        self.key_backbone = key_backbone
        # Definition order follows the reference, so state_dict() lists keys in its order.
        self.conv_fusion1v = nn.Conv2d(VALUE_CHANNELS * (1 + 2 * NUM_FREQUENCIES), VALUE_CHANNELS, 1)
        self.conv_fusion = nn.Conv2d(VALUE_CHANNELS, VALUE_CHANNELS, 1)
        self.key_encoder = KeyEncoder(key_backbone, pretrained=pretrained)
        f4_channels, f8_channels, f16_channels = self.key_encoder.channels
        self.value_encoder = FrameRelationValueEncoder(f16_channels, single_object, pretrained, VALUE_CHANNELS)
        # The 512-channel projection is both the matching key and the query feature.
        self.key_comp = nn.Conv2d(f16_channels, KEY_CHANNELS, kernel_size=3, padding=1)
        self.decoder = Decoder(f8_channels, f4_channels, VALUE_CHANNELS + KEY_CHANNELS)
        # Gates of the three-readout fusion. Training uses `mask` for the first
        # object and `mask2` for the second; the reference's evaluation uses
        # `mask` for every object (see `segment`). `mask2` is never trained in
        # single-object mode and is frozen there (kept for the checkpoint format).
        self.mask = nn.Conv2d(3 * VALUE_CHANNELS, VALUE_CHANNELS, kernel_size=3, padding=1)
        self.mask2 = nn.Conv2d(3 * VALUE_CHANNELS, VALUE_CHANNELS, kernel_size=3, padding=1)
        self.mask2.requires_grad_(not single_object)

    # BatchNorm statistics stay frozen (eval mode) in training as in the reference.
    def train(self, mode=True):
        super().train(mode)
        if self.freeze_bn:
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        return self

    # ---- encoders -----------------------------------------------------------
    def encode_key(self, frame):
        """frame: (B, 3, H, W) -> key (B, 512, h, w) and f16, f8, f4 features."""
        f16, f8, f4 = self.key_encoder(frame)
        return self.key_comp(f16), f16, f8, f4

    def encode_value(self, frame, key_f16, masks, next_frame, others=None):
        """Memory values of a frame: the value (read by the long-term and
        first-frame memories) and the positional-encoded value (read by the
        previous-frame memory), both (B, K, 512, h, w), from one trunk pass.
        ``others`` (B, K, H, W) overrides the other-objects channel (default:
        the sum of the other entries of ``masks``)."""
        value = self.value_encoder(frame, key_f16, masks, next_frame, others)
        return value, self.positional_value(value)

    def positional_value(self, value):
        flat = value.flatten(0, 1)
        encoded = self.conv_fusion(flat + self.conv_fusion1v(sinusoidal_encoding(flat, NUM_FREQUENCIES)))
        return encoded.view_as(value)

    # ---- reading, fusing and decoding -------------------------------------------
    def read(self, query_key, memory: MemoryRecord):
        """The three readouts (long-term, first frame, previous frame), each (B, K, 512, h, w),
        by dense softmax weights over all their memory positions (the training read; inference
        reads the long-term memory by top-k softmax through inference_core/memory_reader.py,
        which also shares affinities across reads)."""
        affinities = {}  # within this call: the first training read uses one key for all three memories

        def weights(key):
            if id(key) not in affinities:
                affinities[id(key)] = torch.softmax(l2_affinity(key, query_key), dim=1)
            return affinities[id(key)]

        return (read_memory(weights(memory.long_term_key), memory.long_term_value),
                read_memory(weights(memory.first_key), memory.first_value),
                read_memory(weights(memory.previous_key), memory.previous_value))

    def fuse(self, long_term, first, previous, gate_conv=None):
        """Fuse three readouts (N, 512, h, w) with a learned sigmoid gate (``gate_conv``,
        default ``mask``: the gate the reference's evaluation uses for every object)."""
        gate_conv = self.mask if gate_conv is None else gate_conv
        stacked = torch.cat([long_term, first, previous], dim=1)
        stacked = stacked + stacked.mean(dim=(2, 3), keepdim=True)
        gate = torch.sigmoid(gate_conv(stacked))
        combined = long_term + first + previous
        return combined * gate + combined

    def segment(self, query_key, f8, f4, memory: MemoryRecord, selector=None, second_object_gate=False):
        """Segment a query frame from the three memories (the training pass; inference decodes
        through ``prepare_decoder`` + ``fuse`` + ``decode``: the same numbers, to float rounding).

        ``selector`` (B, K) zeroes absent objects. ``second_object_gate`` uses `mask2` for
        object 2 (training, as the reference).
        Returns logits (B, K+1, H, W) of the aggregated distribution and the
        object probabilities (B, K, H, W).
        """
        fused = self.fuse_objects(*self.read(query_key, memory), second_object_gate)
        prob = self.decode_objects(fused, query_key, f8, f4)
        if selector is not None:
            prob = prob * selector[:, :, None, None]
        return soft_aggregate_logits(prob), prob

    def fuse_objects(self, long_term, first, previous, second_object_gate=False):
        """``fuse`` object by object: readouts (B, K, 512, h, w) -> (B, K, 512, h, w)."""
        fused = []
        for k in range(long_term.shape[1]):
            gate_conv = self.mask2 if (second_object_gate and k == 1) else self.mask
            fused.append(self.fuse(long_term[:, k], first[:, k], previous[:, k], gate_conv))
        return torch.stack(fused, dim=1)

    def decode_objects(self, fused, query_key, f8, f4):
        """The decoder on [fused readout, query key] of each object, the query's features
        repeated per object: fused (B, K, 512, h, w) -> probabilities (B, K, H, W)."""
        batch, num_objects = fused.shape[:2]

        def per_object(x):
            return x.unsqueeze(1).expand(-1, num_objects, -1, -1, -1).flatten(0, 1)

        decoder_in = torch.cat([fused.flatten(0, 1), per_object(query_key)], dim=1)
        logits = self.decoder(decoder_in, per_object(f8), per_object(f4))
        return torch.sigmoid(logits.view(batch, num_objects, *logits.shape[-2:]).float())

    # Inference decodes every object of a frame with the query's share of the decoder
    # computed once (conv([readout, query]) = conv_r(readout) + conv_q(query); model/decoder.py).
    def prepare_decoder(self, query_key, f8, f4):
        """The decoder's per-frame work, shared by all objects: (1, ...) features of one frame."""
        return self.decoder.prepare(query_key, f8, f4)

    def decode(self, prepared, fused):
        """fused: (K, 512, h, w) fused readouts of one frame's K objects -> (K, H, W) probabilities."""
        logits = self.decoder.decode(fused, prepared)
        return torch.sigmoid(logits.float())[:, 0]

    # ---- training -----------------------------------------------------------
    def forward(self, frames, first_masks, selector=None):
        """The 3-frame training pass.

        frames: (B, 3, 3, H, W) normalised; first_masks: (B, K, H, W) ground truth
        of frame 0 (K = 1 single-object, 2 multi-object); selector: (B, K).
        Frame 1 is segmented from frame 0; its prediction is encoded and frame 2
        is segmented from frames 0-1. Returns {'logits': [l1, l2], 'masks': [m1, m2]}
        with logits (B, K+1, H, W) and masks (B, K, H, W) (aggregated object probabilities).
        """
        batch, num_frames = frames.shape[:2]
        if num_frames != 3:
            raise ValueError(f"training samples have 3 frames, got {num_frames}")
        frames, pad = pad_divide_by(frames)  # as at inference; outputs are un-padded below
        first_masks, _ = pad_divide_by(first_masks)

        key, f16, f8, f4 = self.encode_key(frames.flatten(0, 1))
        key, f16, f8, f4 = (x.view(batch, 3, *x.shape[1:]) for x in (key, f16, f8, f4))
        second_gate = not self.single_object

        value0, pos_value0 = self.encode_value(frames[:, 0], f16[:, 0], first_masks, frames[:, 1])
        key0 = key[:, 0].unsqueeze(2)
        memory = MemoryRecord(long_term_key=key0, long_term_value=value0.unsqueeze(3),
                              first_key=key0, first_value=value0.unsqueeze(3),
                              previous_key=key0, previous_value=pos_value0.unsqueeze(3))
        logits1, _ = self.segment(key[:, 1], f8[:, 1], f4[:, 1], memory, selector=selector,
                                  second_object_gate=second_gate)
        masks1 = torch.softmax(logits1, dim=1)[:, 1:]

        value1, pos_value1 = self.encode_value(frames[:, 1], f16[:, 1], masks1.to(frames.dtype), frames[:, 2])
        key1 = key[:, 1].unsqueeze(2)
        memory = MemoryRecord(long_term_key=key[:, :2].transpose(1, 2),
                              long_term_value=torch.stack([value0, value1], dim=3),
                              first_key=key0, first_value=value0.unsqueeze(3),
                              previous_key=key1, previous_value=pos_value1.unsqueeze(3))
        logits2, _ = self.segment(key[:, 2], f8[:, 2], f4[:, 2], memory, selector=selector,
                                  second_object_gate=second_gate)
        masks2 = torch.softmax(logits2, dim=1)[:, 1:]

        return {"logits": [unpad(logits1, pad), unpad(logits2, pad)],
                "masks": [unpad(masks1, pad), unpad(masks2, pad)]}
