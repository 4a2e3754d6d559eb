"""The network being trained with its optimizer (Adam), LR schedule
(MultiStepLR), AMP scaler and loss: one optimisation step at a time."""
import hashlib

import torch
from torch.nn.parallel import DistributedDataParallel

from model.checkpoint import load_network_weights
from training.losses import IMSFRLoss
from util.config import TRAIN_COMMON


class Trainer:
    """The network (``network``; ``model`` is its DDP wrapper when distributed),
    Adam, MultiStepLR, the AMP scaler and the loss."""

    def __init__(self, network, device, lr, steps, amp=False, ddp=False,
                 bootstrap_start=TRAIN_COMMON["bootstrap_start"], bootstrap_end=TRAIN_COMMON["bootstrap_end"]):
        self.device = torch.device(device)
        self.amp = amp
        self.network = network.to(self.device).train()
        # Frozen parameters (mask2 in single-object mode) get no gradient: leave them
        # out of Adam, and DDP ignores them (no find_unused_parameters needed).
        trainable = [p for p in self.network.parameters() if p.requires_grad]
        if ddp:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.network, device_ids=ids)
        else:
            self.model = self.network
        self.optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=TRAIN_COMMON["weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, steps, TRAIN_COMMON["gamma"])
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp)
        self.criterion = IMSFRLoss(bootstrap_start, bootstrap_end, TRAIN_COMMON["bootstrap_top_p"])

    def inputs(self, batch):
        """(frames, first-frame masks, selector) for the network from a data batch."""
        frames = batch["rgb"]
        if self.network.single_object:
            return frames, batch["gt"][:, 0], torch.ones(frames.shape[0], 1, device=frames.device)
        first_masks = torch.cat([batch["gt"][:, 0], batch["sec_gt"][:, 0]], dim=1)
        return frames, first_masks, batch["selector"].float()

    def step(self, batch, iteration):
        """One optimisation step on a batch already on the device; returns (losses, outputs)."""
        frames, first_masks, selector = self.inputs(batch)
        with torch.autocast(self.device.type, enabled=self.amp):
            outputs = self.model(frames, first_masks, selector)
        losses = self.criterion(outputs, batch["cls_gt"], selector, iteration)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total_loss"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return losses, outputs

    def lr(self):
        return self.scheduler.get_last_lr()[0]

    def network_state(self):
        """Weights in the reference format (no 'module.' prefix), on the CPU."""
        return {k: v.detach().cpu() for k, v in self.network.state_dict().items()}

    def state_dict(self):
        return {"network": self.network_state(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state):
        load_network_weights(self.network, state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def weights_checksum(network) -> str:
    """SHA-256 of all parameters and buffers, to compare the ranks' weights."""
    digest = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()
