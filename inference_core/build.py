"""Building the inference core: the network from a checkpoint (channels-last weights, the precision
of the config) or the ONNX Runtime graphs exported from it, on a device. The evaluation scripts
(inference_core/cli.py: ``core_from_args``) and the interactive demo (interactive/session.py:
``load_core``) build their cores here.
"""
import torch

from inference_core.core import InferenceCore
from inference_core.onnx_backend import onnx_backend
from model.checkpoint import build_network
from util.device import cpu_native, inference_dtype, pick_device, precision_name


def onnx_config(config):
    """``config`` for the ONNX Runtime backend, whose graphs compute in float32: ``auto`` runs
    float32 there; a reduced precision asked for by name is refused (ValueError)."""
    if config.precision in ("fp32", "auto"):
        return config.replace(precision="fp32")
    flag = "--amp" if config.precision == "amp" else f"--precision {config.precision}"
    raise ValueError(f"{flag} does not apply to --backend onnxruntime (its graphs compute in float32); "
                     f"use --precision fp32 or auto")


def build_core(model, config, device=None, channels_last=True, backend="torch", onnx=None):
    """Network (``model``: a checkpoint path), device and inference core for ``config``, in
    ``config.precision`` (fp32, bf16, fp16, auto, amp; errors: CheckpointError, ValueError,
    RuntimeError). ``backend`` "onnxruntime": the graphs in the folder ``onnx`` exported from
    ``model`` (float32, no speed layer; OnnxError)."""
    device = pick_device(device)
    if backend != "torch" or onnx is not None:
        return InferenceCore(*onnx_backend(onnx, model, onnx_config(config), device, backend))
    dtype = inference_dtype(config.precision, device)
    if device.type == "cpu" and dtype != torch.float32 and not cpu_native(dtype):
        print(f"note: this CPU has no native {precision_name(dtype)} (docs/speed.md); it is emulated, "
              f"slower than fp32")
    if config.offload_memory and device.type != "cuda":
        print(f"note: --offload_memory has no effect on {device.type}; the memory is already in host memory")
    network = build_network(model, device)
    if channels_last:  # oneDNN and CUDA's tensor cores prefer it; TorchBackend follows the weights
        network.to(memory_format=torch.channels_last)
    return InferenceCore(network, config, device)
