"""Bootstrapped cross-entropy with its warm-up schedule, and the training loss."""
import torch
import torch.nn.functional as F

# The losses the training loop averages and logs (keys of IMSFRLoss's result).
LOSS_NAMES = ("total_loss", "ce_loss_1", "ce_loss_2", "iou_1", "iou_2")


def bootstrap_fraction(iteration: int, start: int, end: int, final_p: float) -> float:
    """Fraction p of the hardest pixels kept: 1 before ``start``, falling linearly
    to ``final_p`` at ``end``, then constant."""
    if iteration < start:
        return 1.0
    if iteration >= end:
        return final_p
    return final_p + (1 - final_p) * (end - iteration) / (end - start)


class BootstrappedCE(torch.nn.Module):
    def __init__(self, start_warm=20_000, end_warm=70_000, top_p=0.15):
        super().__init__()
        self.start_warm, self.end_warm, self.top_p = start_warm, end_warm, top_p

    def forward(self, logits, target, iteration):
        """Mean of the top-p pixel losses; returns (loss, p)."""
        p = bootstrap_fraction(iteration, self.start_warm, self.end_warm, self.top_p)
        if p >= 1.0:
            return F.cross_entropy(logits, target), 1.0
        pixel_loss = F.cross_entropy(logits, target, reduction="none").flatten()
        hardest, _ = torch.topk(pixel_loss, max(1, int(pixel_loss.numel() * p)), sorted=False)
        return hardest.mean(), p


def mask_iou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of two binary mask batches (summed over the batch), for logging."""
    intersection = (pred & target).sum()
    union = (pred | target).sum()
    return (intersection.float() + 1e-6) / (union.float() + 1e-6)


class IMSFRLoss(torch.nn.Module):
    """Loss of a 3-frame training sample: bootstrapped CE on the aggregated logits
    of frames 1 and 2, per sample, restricted to background + first object when
    the sample has no second object."""

    def __init__(self, start_warm=20_000, end_warm=70_000, top_p=0.15):
        super().__init__()
        self.bce = BootstrappedCE(start_warm, end_warm, top_p)

    def forward(self, outputs, cls_gt, selector, iteration):
        """outputs: the dict of IMSFR.forward; cls_gt: (B, 3, H, W) int64;
        selector: (B, K) with 1 for present objects (K=1 in single-object mode)."""
        losses = {"total_loss": 0.0}
        batch = cls_gt.shape[0]
        # Background plus the present objects of each sample (one device sync for the batch).
        classes = [1 + int(n) for n in selector.sum(1).tolist()] if selector is not None else None
        for frame, logits in enumerate(outputs["logits"], start=1):
            frame_loss = 0.0
            for b in range(batch):
                num_classes = classes[b] if classes is not None else logits.shape[1]
                loss, p = self.bce(logits[b:b + 1, :num_classes], cls_gt[b:b + 1, frame], iteration)
                frame_loss = frame_loss + loss
            losses[f"ce_loss_{frame}"] = frame_loss / batch
            losses["total_loss"] = losses["total_loss"] + losses[f"ce_loss_{frame}"]
            with torch.no_grad():
                pred = outputs["masks"][frame - 1][:, 0] > 0.5
                losses[f"iou_{frame}"] = mask_iou(pred, cls_gt[:, frame] == 1)
        losses["p"] = p
        return losses
