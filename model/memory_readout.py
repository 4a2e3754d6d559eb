"""Memory reading: L2 affinity between memory keys and a query key, the weighted sum
of memory values (weights: a softmax of the affinity over memory positions), and the
record of the three memories a query reads. The inference's top-k readout of the
long-term memory is inference_core/memory_reader.py."""
import math
from dataclasses import dataclass

import torch


@dataclass
class MemoryRecord:
    """The three memories one read of K objects uses (training and inference).

    Keys are (B, C, T, h, w), values (B, K, C, T, h, w):
    ``long_term_*``: the memory frames read through the isogenous sampler;
    ``first_*``: the frame where the objects were given (T = 1);
    ``previous_*``: the previous memory frame, its value positional-encoded (T = 1).
    """
    long_term_key: torch.Tensor
    long_term_value: torch.Tensor
    first_key: torch.Tensor
    first_value: torch.Tensor
    previous_key: torch.Tensor
    previous_value: torch.Tensor


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


def read_memory(weights: torch.Tensor, memory_value: torch.Tensor) -> torch.Tensor:
    """weights: (B, THW, HW); memory_value: (B, K, C, T, H, W) -> (B, K, C, H, W)."""
    batch, objects, channels = memory_value.shape[:3]
    height, width = memory_value.shape[-2:]
    mv = memory_value.reshape(batch, objects * channels, -1)
    out = mv @ weights.to(mv.dtype)
    return out.view(batch, objects, channels, height, width)
