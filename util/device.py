"""Pick the compute device once and pass it around (no bare ``.cuda()``)."""
import torch


def pick_device(name=None) -> torch.device:
    """``name`` if given ('cpu', 'cuda', 'cuda:1'), else CUDA when available, else CPU."""
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device '{name}' requested but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_available(device: torch.device) -> bool:
    """Mixed precision is used on CUDA only (CPU autocast is slower for these convs)."""
    return torch.device(device).type == "cuda"


def synchronize(device: torch.device):
    """Wait for the device's queued work (CUDA runs asynchronously), for timing."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
