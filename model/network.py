"""IMSFR: the whole network, one definition for training and inference.

Shapes: B batch, K objects, T memory frames, C channels, (h, w) = (H/16, W/16).
Keys are shared by all objects: (B, 512, T, h, w). Values are per object:
(B, K, 512, T, h, w). Frames passed to the encoders must have H and W divisible
by 16 (``util.tensor_util.pad_divide_by`` pads them; ``forward`` pads itself the same way).
"""
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from model.aggregate import soft_aggregate_logits
from model.backbones import KeyEncoder
from model.decoder import Decoder
from model.memory_readout import l2_affinity, read_memory, read_memory_top_k, softmax_affinity
from model.positional import sinusoidal_encoding
from model.value_encoder import FrameRelationValueEncoder
from model.winograd import use_winograd
from util.tensor_util import pad_divide_by, unpad

KEY_CHANNELS = 512
VALUE_CHANNELS = 512
NUM_FREQUENCIES = 6


@dataclass
class QueryFeatures:
    """Everything of a query frame that all objects share (``IMSFR.prepare_query``):
    the key, the decoder's per-frame parts and the affinities already computed
    for a memory key (keyed by the key tensor's id; valid for this frame only)."""
    key: torch.Tensor
    decoder: object
    affinities: dict = field(default_factory=dict)


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
        if self.key_comp.weight.is_contiguous(memory_format=torch.channels_last):
            frame = frame.contiguous(memory_format=torch.channels_last)  # see to_channels_last
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

    # ---- reading and decoding -------------------------------------------------
    def gated_fusion(self, local, global_, adjacent, gate_conv):
        """Fuse three readouts (N, 512, h, w) with a learned sigmoid gate."""
        stacked = torch.cat([local, global_, adjacent], dim=1)
        stacked = stacked + stacked.mean(dim=(2, 3), keepdim=True)
        gate = torch.sigmoid(gate_conv(stacked))
        combined = local + global_ + adjacent
        return combined * gate + combined

    def segment(self, query_key, f8, f4, memory, top_k=None, selector=None, second_object_gate=False):
        """Segment a query frame from the three memories.

        memory: dict with 'local_key' (B, 512, T, h, w), 'local_value' (B, K, 512, T, h, w),
        'global_key'/'global_value' (first frame, T=1) and 'adjacent_key'/'adjacent_value'
        (previous memory frame, positional value, T=1). ``top_k`` applies to the
        long-term (local) readout only. ``selector`` (B, K) zeroes absent objects.
        ``second_object_gate`` uses `mask2` for object 2 (training, as the reference).
        Returns logits (B, K+1, H, W) of the aggregated distribution and the
        object probabilities (B, K, H, W).
        """
        cache = {}

        def weights(key, k):
            ident = (id(key), k)
            if ident not in cache:
                cache[ident] = softmax_affinity(l2_affinity(key, query_key), k)
            return cache[ident]

        local = read_memory(weights(memory["local_key"], top_k), memory["local_value"])
        global_ = read_memory(weights(memory["global_key"], None), memory["global_value"])
        adjacent = read_memory(weights(memory["adjacent_key"], None), memory["adjacent_value"])

        batch, num_objects = local.shape[:2]
        fused = []
        for k in range(num_objects):
            gate_conv = self.mask2 if (second_object_gate and k == 1) else self.mask
            fused.append(self.gated_fusion(local[:, k], global_[:, k], adjacent[:, k], gate_conv))
        fused = torch.stack(fused, dim=1)  # B, K, 512, h, w

        def per_object(x):
            return x.unsqueeze(1).expand(-1, num_objects, -1, -1, -1).flatten(0, 1)

        decoder_in = torch.cat([fused.flatten(0, 1), per_object(query_key)], dim=1)
        logits = self.decoder(decoder_in, per_object(f8), per_object(f4))
        prob = torch.sigmoid(logits.view(batch, num_objects, *logits.shape[-2:]).float())
        if selector is not None:
            prob = prob * selector[:, :, None, None]
        return soft_aggregate_logits(prob), prob

    # ---- inference: shared work once per frame ----------------------------------
    # ``segment`` above is what training runs. Inference computes the same
    # numbers (to float rounding; tests/test_inference_speed_paths.py) without
    # per-object duplication: the query's decoder parts once per frame, each
    # memory key's affinity once per frame, top-k readouts as a gather of k
    # values instead of a product with a mostly-zero weight matrix, and the
    # aggregation left to the caller (inference_core/baseline.py keeps the
    # reference-shaped path as the measuring stick).
    def prepare_query(self, query_key, f8, f4):
        """The per-frame work every object shares: (1, ...) features of one frame."""
        return QueryFeatures(query_key, self.decoder.prepare(query_key, f8, f4))

    def _weights(self, query, key, top_k):
        """(softmax weights, top-k indices or None) of a memory key for this query,
        computed once per key tensor and frame."""
        ident = (id(key), top_k)
        cached = query.affinities.get(ident)
        if cached is None:  # the entry holds the key, so its id stays valid for this frame
            affinity = l2_affinity(key.float(), query.key.float())
            if top_k is not None and top_k < affinity.shape[1]:
                values, indices = torch.topk(affinity, k=top_k, dim=1)
                cached = (key, torch.softmax(values, dim=1), indices)
            else:
                cached = (key, torch.softmax(affinity, dim=1), None)
            query.affinities[ident] = cached
        return cached[1:]

    def _read(self, query, key, value, top_k):
        weights, indices = self._weights(query, key, top_k)
        if indices is None:
            return read_memory(weights, value.float())
        return read_memory_top_k(weights, indices, value.float())

    def read_and_fuse(self, query, memory, top_k=None):
        """The three readouts and their gated fusion for the memory's K objects:
        (B, K, 512, h, w). Affinities are computed in float32 (also under autocast)."""
        with torch.autocast(query.key.device.type, enabled=False):
            local = self._read(query, memory["local_key"], memory["local_value"], top_k)
            global_ = self._read(query, memory["global_key"], memory["global_value"], None)
            adjacent = self._read(query, memory["adjacent_key"], memory["adjacent_value"], None)
        batch, num_objects = local.shape[:2]
        fused = self.gated_fusion(local.flatten(0, 1), global_.flatten(0, 1), adjacent.flatten(0, 1), self.mask)
        return fused.view(batch, num_objects, *fused.shape[1:])

    # Objects decoded per batch (None: all at once). CPU convolutions of a batch of
    # N are not always faster than N batches of one (scripts/benchmark_inference.py).
    decode_chunk = None

    def decode(self, query, fused):
        """fused: (1, K, 512, h, w) readouts of one frame's K objects -> (1, K, H, W) probabilities."""
        num_objects = fused.shape[1]
        chunk = self.decode_chunk or num_objects
        logits = torch.cat([self.decoder.decode(part, query.decoder) for part in fused[0].split(chunk)])
        return torch.sigmoid(logits.float()).view(1, num_objects, *logits.shape[-2:])

    def use_winograd(self, enabled=True, **options):
        """CPU float32 inference: the 3x3 convolutions with 256+ channels by Winograd
        F(4x4, 3x3) (model/winograd.py; same state dict, training unchanged).
        Numbers equal to float rounding (tests/test_winograd.py). Returns self."""
        use_winograd(self, enabled, **options)
        return self

    def to_channels_last(self):
        """Convolution weights in channels-last layout (CPU oneDNN and CUDA tensor cores
        prefer it); ``encode_key`` then converts its input frame. Same numbers to rounding."""
        return self.to(memory_format=torch.channels_last)

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
        memory = dict(local_key=key0, local_value=value0.unsqueeze(3),
                      global_key=key0, global_value=value0.unsqueeze(3),
                      adjacent_key=key0, adjacent_value=pos_value0.unsqueeze(3))
        logits1, _ = self.segment(key[:, 1], f8[:, 1], f4[:, 1], memory, selector=selector,
                                  second_object_gate=second_gate)
        masks1 = torch.softmax(logits1, dim=1)[:, 1:]

        value1, pos_value1 = self.encode_value(frames[:, 1], f16[:, 1], masks1.to(frames.dtype), frames[:, 2])
        key1 = key[:, 1].unsqueeze(2)
        memory = dict(local_key=key[:, :2].transpose(1, 2), local_value=torch.stack([value0, value1], dim=3),
                      global_key=key0, global_value=value0.unsqueeze(3),
                      adjacent_key=key1, adjacent_value=pos_value1.unsqueeze(3))
        logits2, _ = self.segment(key[:, 2], f8[:, 2], f4[:, 2], memory, selector=selector,
                                  second_object_gate=second_gate)
        masks2 = torch.softmax(logits2, dim=1)[:, 1:]

        return {"logits": [unpad(logits1, pad), unpad(logits2, pad)],
                "masks": [unpad(masks1, pad), unpad(masks2, pad)]}
