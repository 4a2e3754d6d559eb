"""Memory reading: L2 affinity between memory keys and a query key, plain or
top-k softmax over memory positions, and the weighted sum of memory values."""
import math

import torch


def l2_affinity(memory_key: torch.Tensor, query_key: torch.Tensor) -> torch.Tensor:
    """Negative squared L2 distance up to a per-query constant, scaled by sqrt(C):
    a_ij = (2 k_i.q_j - |k_i|^2) / sqrt(C).

    memory_key: (B, C, T, H, W); query_key: (B, C, H, W) -> (B, THW, HW).
    """
    channels = memory_key.shape[1]
    mk = memory_key.flatten(2)            # B, C, THW
    qk = query_key.flatten(2)             # B, C, HW
    key_sq = mk.pow(2).sum(1).unsqueeze(2)
    return (2 * mk.transpose(1, 2) @ qk - key_sq) / math.sqrt(channels)


def softmax_affinity(affinity: torch.Tensor, top_k: int = None) -> torch.Tensor:
    """Softmax over memory positions (dim 1); with ``top_k``, only the k largest
    affinities of each query pixel are kept and renormalised (the rest are 0)."""
    if top_k is None or top_k >= affinity.shape[1]:
        return torch.softmax(affinity, dim=1)
    values, indices = torch.topk(affinity, k=top_k, dim=1)
    weights = torch.softmax(values, dim=1)
    return torch.zeros_like(affinity).scatter_(1, indices, weights)


def read_memory(weights: torch.Tensor, memory_value: torch.Tensor) -> torch.Tensor:
    """weights: (B, THW, HW); memory_value: (B, K, C, T, H, W) -> (B, K, C, H, W)."""
    batch, objects, channels = memory_value.shape[:3]
    height, width = memory_value.shape[-2:]
    mv = memory_value.reshape(batch, objects * channels, -1)
    out = mv @ weights.to(mv.dtype)
    return out.view(batch, objects, channels, height, width)


def read_memory_top_k(weights: torch.Tensor, indices: torch.Tensor, memory_value: torch.Tensor) -> torch.Tensor:
    """The top-k readout without the dense weight matrix: ``read_memory`` of
    ``softmax_affinity(affinity, k)`` equals, for every query pixel j, the sum
    over its k kept memory positions of weight x value.

    weights, indices: (B, k, HW) from ``topk`` + softmax; memory_value: (B, K, C, T, H, W)
    -> (B, K, C, H, W). Costs k gathers of (K C, HW) instead of a (K C, THW) x (THW, HW) product.
    """
    batch, objects, channels = memory_value.shape[:3]
    height, width = memory_value.shape[-2:]
    mv = memory_value.reshape(batch, objects * channels, -1)
    weights = weights.to(mv.dtype)
    out = []
    for b in range(batch):
        acc = None
        for i in range(indices.shape[1]):
            gathered = mv[b].index_select(1, indices[b, i])
            acc = gathered * weights[b, i] if acc is None else acc.addcmul_(gathered, weights[b, i])
        out.append(acc)
    return torch.stack(out).view(batch, objects, channels, height, width)
