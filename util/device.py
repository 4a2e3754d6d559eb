"""Pick the compute device once and pass it around (no bare ``.cuda()``), and the
precision inference runs in on it (``--precision``, docs/speed.md)."""
import torch

from util.config import PRECISION_ALIASES, PRECISIONS

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic: AVX-512 BF16, AMX.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
NATIVE_FP16_FLAGS = ("avx512_fp16", "amx_fp16")
CPUINFO = "/proc/cpuinfo"


def pick_device(name=None) -> torch.device:
    """``name`` if given ('cpu', 'cuda', 'cuda:1'), else CUDA when available, else CPU."""
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device '{name}' requested but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_flags(cpuinfo=None) -> set:
    """The CPU's feature flags: the ``flags`` line of ``cpuinfo`` (the text of /proc/cpuinfo; None:
    read it). Empty where there is no such file (not Linux)."""
    if cpuinfo is None:
        try:
            with open(CPUINFO) as f:
                cpuinfo = f.read()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def cpu_bf16_supported(cpuinfo=None) -> bool:
    """Whether this CPU runs bfloat16 natively: the flag avx512_bf16 or amx_bf16 (``cpu_flags``).
    Elsewhere PyTorch emulates bfloat16, slower than float32. (oneDNN's own answer,
    ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``, is True on AVX-512 CPUs without BF16,
    where bfloat16 convolutions took 2.75x the float32 time.)"""
    return cpu_native(torch.bfloat16, cpuinfo)


def cpu_native(dtype, cpuinfo=None) -> bool:
    """Whether this CPU computes ``dtype`` natively (float32 always; bfloat16: ``cpu_bf16_supported``;
    float16: the flag avx512_fp16 or amx_fp16)."""
    if dtype == torch.float32:
        return True
    flags = NATIVE_BF16_FLAGS if dtype == torch.bfloat16 else NATIVE_FP16_FLAGS
    return bool(cpu_flags(cpuinfo) & set(flags))


def inference_dtype(precision, device, cpuinfo=None) -> torch.dtype:
    """The dtype inference computes its convolutions and matrix products in (autocast; float32:
    none) for ``precision`` on ``device``:

    * fp32, bf16, fp16: that type (bf16/fp16 run on any CPU, emulated where not native);
    * amp (the reference's --amp): fp16 on CUDA, bf16 elsewhere;
    * auto: fp16 on CUDA, bf16 on CPUs with native bfloat16 (``cpu_bf16_supported``), fp32
      elsewhere (docs/speed.md: where it was measured, and what).

    ValueError for an unknown precision or a reduced one the device cannot autocast to."""
    device = torch.device(device)
    if precision not in PRECISIONS + PRECISION_ALIASES:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "amp":
        precision = "fp16" if device.type == "cuda" else "bf16"
    elif precision == "auto":
        if device.type == "cuda":
            precision = "fp16"
        else:
            precision = "bf16" if device.type == "cpu" and cpu_bf16_supported(cpuinfo) else "fp32"
    dtype = DTYPES[precision]
    if dtype != torch.float32 and not torch.amp.is_autocast_available(device.type):
        raise ValueError(f"--precision {precision}: no mixed precision on {device.type}")
    return dtype


def precision_name(dtype) -> str:
    """'fp32', 'bf16' or 'fp16' of a dtype of ``inference_dtype``."""
    return {v: k for k, v in DTYPES.items()}[dtype]


def amp_available(device: torch.device) -> bool:
    """Mixed precision in training is used on CUDA only (float16 with a grad scaler)."""
    return torch.device(device).type == "cuda"


def synchronize(device: torch.device):
    """Wait for the device's queued work (CUDA runs asynchronously), for timing."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
