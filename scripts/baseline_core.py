"""The measuring stick of inference speed: the core as it was before the speed work.

``BaselineBackend`` segments every memory read with ``IMSFR.segment``, the
training pass's reference-shaped maths: the three readouts through dense
(top-k) weight matrices, the gate per object, and the whole decoder per object
with the query key, f8 and f4 repeated per object (skip convolutions included).
The memory handling is the core's, so both paths read the same frames.
scripts/benchmark_inference.py times the optimised core against it;
tests/test_inference_speed_paths.py checks that they give the same probabilities.
It lives outside the package users import: nothing runs it but those two.
"""
import torch

from inference_core.backend import TorchBackend
from inference_core.core import InferenceCore


class BaselineBackend(TorchBackend):
    def segment(self, key, f8, f4, reads, top_k):
        probs = [self.network.segment(key, f8, f4, read.memory, top_k=top_k)[1][0] for read in reads]
        return torch.cat(probs)


def baseline_core(network, config, device):
    """An ``InferenceCore`` whose frames are segmented the baseline's way."""
    return InferenceCore(BaselineBackend(network), config, device)
