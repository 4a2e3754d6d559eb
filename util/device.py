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


def cpu_bf16_supported() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN: AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_available(device: torch.device) -> bool:
    """Mixed precision in training is used on CUDA only (float16 with a grad scaler)."""
    return torch.device(device).type == "cuda"


def inference_amp_available(device: torch.device) -> bool:
    """Mixed precision at inference (``--amp``): float16 on CUDA, bfloat16 on CPUs
    with native bfloat16 (``amp_dtype``); elsewhere --amp runs in float32."""
    device = torch.device(device)
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_supported())


def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast dtype of inference ``--amp`` on ``device``."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.bfloat16


def synchronize(device: torch.device):
    """Wait for the device's queued work (CUDA runs asynchronously), for timing."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
