"""Sinusoidal (NeRF-style) encoding used for the previous-frame memory value."""
import torch


def sinusoidal_encoding(x: torch.Tensor, num_frequencies: int = 6, dim: int = 1) -> torch.Tensor:
    """Element-wise encoding along ``dim``: [x, sin(x), cos(x), sin(2x), cos(2x), ...,
    sin(2^(F-1) x), cos(2^(F-1) x)], so C channels become C * (1 + 2F)."""
    parts = [x]
    for i in range(num_frequencies):
        scaled = x * (2.0 ** i)
        parts += [torch.sin(scaled), torch.cos(scaled)]
    return torch.cat(parts, dim=dim)
