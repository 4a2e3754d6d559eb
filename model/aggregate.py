"""Soft aggregation of per-object probabilities (STM): a background channel
Prod(1 - p_k) is added, and the odds of all channels are renormalised."""
import torch


def soft_aggregate_logits(prob: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """prob: (B, K, H, W) independent object probabilities -> (B, K+1, H, W) logits
    whose softmax is the aggregated distribution (background first)."""
    prob = prob.float()  # 1 - 1e-7 is 1 in half precision
    background = torch.prod(1 - prob, dim=1, keepdim=True)
    merged = torch.cat([background, prob], dim=1).clamp(eps, 1 - eps)
    return torch.log(merged / (1 - merged))


def soft_aggregate(prob: torch.Tensor) -> torch.Tensor:
    """The aggregated probabilities (B, K+1, H, W), summing to 1 per pixel."""
    return torch.softmax(soft_aggregate_logits(prob), dim=1)
