"""The measuring stick of inference speed: the core as it was before the speed work.

``BaselineBackend`` segments every memory read with the training pass's reference-shaped
maths: the three readouts through dense weight matrices (``baseline_read``; the long-term
one through the reference's top-k softmax as a dense matrix, ``dense_top_k_softmax``), the
gate per object (``IMSFR.fuse_objects``), and the whole decoder per object with the query
key, f8 and f4 repeated per object, skip convolutions included (``IMSFR.decode_objects``).
The memory handling is the core's, so both paths read the same frames.
scripts/benchmark_inference.py times the optimised core against it;
tests/test_inference_speed_paths.py checks that they give the same probabilities.
It lives outside the package users import: nothing runs it but those two (and the tests
that hold the inference's top-k readout, inference_core/memory_reader.py, against it).
"""
import torch

from inference_core.backend import TorchBackend
from inference_core.core import InferenceCore
from model.memory_readout import l2_affinity, read_memory


def dense_top_k_softmax(affinity, top_k=None):
    """The reference's top-k softmax as a dense (B, THW, HW) weight matrix: over memory
    positions (dim 1) only the ``top_k`` largest affinities of each query pixel are kept and
    renormalised, the rest are 0 (``top_k`` None or at least THW: plain softmax)."""
    if top_k is None or top_k >= affinity.shape[1]:
        return torch.softmax(affinity, dim=1)
    values, indices = torch.topk(affinity, k=top_k, dim=1)
    return torch.zeros_like(affinity).scatter_(1, indices, torch.softmax(values, dim=1))


def baseline_read(query_key, memory, top_k):
    """The three readouts (long-term, first frame, previous frame) of a ``MemoryRecord``, each
    (B, K, 512, h, w), by dense weights: ``IMSFR.read`` with ``top_k`` on the long-term one."""
    def readout(key, value, k=None):
        return read_memory(dense_top_k_softmax(l2_affinity(key, query_key), k), value)

    return (readout(memory.long_term_key, memory.long_term_value, top_k),
            readout(memory.first_key, memory.first_value),
            readout(memory.previous_key, memory.previous_value))


class BaselineBackend(TorchBackend):
    def segment(self, key, f8, f4, reads, top_k):
        net = self.network
        probs = [net.decode_objects(net.fuse_objects(*baseline_read(key, read.memory, top_k)), key, f8, f4)[0]
                 for read in reads]
        return torch.cat(probs)


def baseline_core(network, config, device):
    """An ``InferenceCore`` whose frames are segmented the baseline's way."""
    return InferenceCore(BaselineBackend(network), config, device)
