"""The measuring stick for inference speed: the core as it was before the speed
work (issue 13), frozen here so that benchmarks compare both paths in one run on
one machine, and tests check that the optimised path gives the same probabilities.

Do not optimise this file. ``baseline_segment`` is ``IMSFR.segment`` as the
inference core called it: the three readouts through the dense (top-k) weight
matrix, the gate conv per object, the query key, f8 and f4 expanded per object
and the whole decoder (skip convolutions included) run per object, then soft
aggregation. It is written with the network's layers and plain torch ops only,
so later changes to the model's inference helpers do not move it.
``BaselineCore`` is ``InferenceCore`` with that segment.
"""
import math

import torch
import torch.nn.functional as F

from inference_core.core import InferenceCore
from model.aggregate import soft_aggregate_logits


def _l2_affinity(memory_key, query_key):
    channels = memory_key.shape[1]
    mk = memory_key.flatten(2)
    qk = query_key.flatten(2)
    key_sq = mk.pow(2).sum(1).unsqueeze(2)
    return (2 * mk.transpose(1, 2) @ qk - key_sq) / math.sqrt(channels)


def _softmax_affinity(affinity, top_k=None):
    if top_k is None or top_k >= affinity.shape[1]:
        return torch.softmax(affinity, dim=1)
    values, indices = torch.topk(affinity, k=top_k, dim=1)
    weights = torch.softmax(values, dim=1)
    return torch.zeros_like(affinity).scatter_(1, indices, weights)


def _read_memory(weights, memory_value):
    batch, objects, channels = memory_value.shape[:3]
    height, width = memory_value.shape[-2:]
    mv = memory_value.reshape(batch, objects * channels, -1)
    out = mv @ weights.to(mv.dtype)
    return out.view(batch, objects, channels, height, width)


def _res_block(block, x):
    residual = block.conv2(F.relu(block.conv1(F.relu(x))))
    if block.downsample is not None:
        x = block.downsample(x)
    return x + residual


def _upsample_block(block, skip, coarse):
    x = block.skip_conv(skip)
    x = x + F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return _res_block(block.out_conv, x)


def _decoder(decoder, x, f8, f4):
    x = _res_block(decoder.compress, x)
    x = _upsample_block(decoder.up_16_8, f8, x)
    x = _upsample_block(decoder.up_8_4, f4, x)
    x = decoder.pred(F.relu(x))
    return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)


def _gated_fusion(local, global_, adjacent, gate_conv):
    stacked = torch.cat([local, global_, adjacent], dim=1)
    stacked = stacked + stacked.mean(dim=(2, 3), keepdim=True)
    gate = torch.sigmoid(gate_conv(stacked))
    combined = local + global_ + adjacent
    return combined * gate + combined


def baseline_readouts(query_key, memory, top_k=None):
    """The three readouts (B, K, 512, h, w) as the baseline computes them."""
    cache = {}

    def weights(key, k):
        ident = (id(key), k)
        if ident not in cache:
            cache[ident] = _softmax_affinity(_l2_affinity(key, query_key), k)
        return cache[ident]

    local = _read_memory(weights(memory["local_key"], top_k), memory["local_value"])
    global_ = _read_memory(weights(memory["global_key"], None), memory["global_value"])
    adjacent = _read_memory(weights(memory["adjacent_key"], None), memory["adjacent_value"])
    return local, global_, adjacent


def baseline_fusion(network, local, global_, adjacent):
    """Gated fusion, one object at a time (inference: the ``mask`` gate for all)."""
    fused = [_gated_fusion(local[:, k], global_[:, k], adjacent[:, k], network.mask)
             for k in range(local.shape[1])]
    return torch.stack(fused, dim=1)


def baseline_decode(network, query_key, f8, f4, fused):
    """Decoder with the query feature, f8 and f4 expanded per object -> probabilities (B, K, H, W)."""
    batch, num_objects = fused.shape[:2]

    def per_object(x):
        return x.unsqueeze(1).expand(-1, num_objects, -1, -1, -1).flatten(0, 1)

    decoder_in = torch.cat([fused.flatten(0, 1), per_object(query_key)], dim=1)
    logits = _decoder(network.decoder, decoder_in, per_object(f8), per_object(f4))
    return torch.sigmoid(logits.view(batch, num_objects, *logits.shape[-2:]).float())


def baseline_segment(network, query_key, f8, f4, memory, top_k=None):
    """``IMSFR.segment`` at inference before the speed work: (logits (B, K+1, H, W), prob (B, K, H, W))."""
    local, global_, adjacent = baseline_readouts(query_key, memory, top_k)
    prob = baseline_decode(network, query_key, f8, f4, baseline_fusion(network, local, global_, adjacent))
    return soft_aggregate_logits(prob), prob


class BaselineCore(InferenceCore):
    """``InferenceCore`` whose frames are segmented by ``baseline_segment``, one
    call per memory read (the core's memory handling is shared, so both paths
    read the same frames)."""

    def _predict(self, key, f8, f4, size):
        probs = [key.new_zeros(0, *size, dtype=torch.float32)]
        for bank in self.banks:
            if bank.num_frames == 0:
                probs.append(key.new_zeros(len(bank.objects), *size, dtype=torch.float32))
                continue
            for _, memory in bank.reads(self.sampler, self.per_object_draws):
                _, group_prob = baseline_segment(self.network, key, f8, f4, memory, top_k=self.config.top_k)
                probs.append(group_prob[0])
        return torch.cat(probs, dim=0)
