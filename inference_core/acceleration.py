"""The speed layer of CPU/GPU inference, applied to a built network in one place.

The network (model/) knows nothing of it: ``accelerate`` changes how a built
``IMSFR`` computes, never what it computes (the same state dict; the same numbers
to float rounding: tests/test_inference_speed_paths.py):

* channels-last convolution weights (oneDNN on the CPU and CUDA's tensor cores
  prefer them; ``TorchBackend`` then gives the key encoder a channels-last frame);
* Winograd F(4x4, 3x3) convolutions in CPU float32 inference for the 3x3
  convolutions with 256+ channels (inference_core/winograd.py; docs/speed.md):
  ``auto`` where a one-time timing at their first call shows they pay, within a memory
  budget; ``on`` every one (reproducible); ``off`` none (the default: DEFAULT_MODE).

The eval scripts, the interactive demo and the benchmarks call it; training never does.
"""
import torch

from inference_core.winograd import DEFAULT_MODE, use_winograd


def accelerate(network, device, channels_last=True, winograd=DEFAULT_MODE):
    """Apply the speed layer to ``network`` in place for inference on ``device``; returns it.
    ``winograd``: "auto", "on" or "off" (True and False: "on" and "off")."""
    if channels_last:
        network.to(memory_format=torch.channels_last)
    mode = {True: "on", False: "off"}.get(winograd, winograd)
    use_winograd(network, mode if torch.device(device).type == "cpu" else "off")
    return network
