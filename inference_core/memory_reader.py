"""Reading the memory for one query frame at inference, and the top-k readout.

The numbers of ``IMSFR.read`` (the training readouts, plain softmax) with the long-term
readout through the top-k softmax of the reference (each query pixel keeps its k largest
affinities, renormalised), with the work shared: a memory key's affinity to the query is
computed once per frame (reads of the same memory frames share it: the first-frame and
previous-frame memories are read once per object under the YouTube-VOS procedure), and the
top-k readout gathers the k kept values per query pixel instead of multiplying by a
mostly-zero weight matrix. ``top_k_weights`` and ``read_memory_top_k`` are that readout, for
this module and the ONNX graph (inference_core/onnx_export.py). A ``FrameReader`` lives for
one query frame; its cache goes with it.
"""
import torch
from torch._higher_order_ops.scan import scan

from model.memory_readout import l2_affinity, read_memory


def top_k_weights(affinity: torch.Tensor, top_k: int):
    """The top-k softmax of ``affinity`` (B, THW, HW) over memory positions: the weights
    (B, k, HW) of each query pixel's k largest affinities, renormalised, and their memory
    positions (B, k, HW). ``top_k`` below THW (at or above it, read by plain softmax)."""
    values, indices = torch.topk(affinity, k=top_k, dim=1)
    return torch.softmax(values, dim=1), indices


def read_memory_top_k(weights: torch.Tensor, indices: torch.Tensor, memory_value: torch.Tensor) -> torch.Tensor:
    """The top-k readout without the dense weight matrix: for every query pixel j, the sum
    over its k kept memory positions of weight x value, accumulated one kept position at a time.

    weights, indices: (B, k, HW) from ``top_k_weights``; memory_value: (B, K, C, T, H, W)
    -> (B, K, C, H, W). Costs k gathers of (K C, HW) instead of a (K C, THW) x (THW, HW) product.
    """
    batch, objects, channels = memory_value.shape[:3]
    height, width = memory_value.shape[-2:]
    mv = memory_value.reshape(batch, objects * channels, -1)
    weights = weights.to(mv.dtype)
    out = []
    for b in range(batch):
        if torch.compiler.is_exporting():
            # torch.export (the ONNX graph, where k is a graph input): the same sum as a scan over
            # the k positions (a pure step), gathering rows of the values transposed to (THW, K C):
            # ONNX Runtime's Gather is several times faster along the first axis than the second.
            rows = mv[b].t().contiguous()
            acc, _ = scan(lambda acc, kept: (acc + rows.index_select(0, kept[1]) * kept[0].unsqueeze(1),
                                             acc.new_zeros(())),
                          rows.new_zeros(weights.shape[2], rows.shape[1]), (weights[b], indices[b]))
            acc = acc.t()
        else:
            acc = mv.new_zeros(mv.shape[1], weights.shape[2])
            for i in range(indices.shape[1]):
                acc.addcmul_(mv[b].index_select(1, indices[b, i]), weights[b, i])
        out.append(acc)
    return torch.stack(out).view(batch, objects, channels, height, width)


class FrameReader:
    """The three readouts of ``MemoryRead``s for one query key (1, C, h, w), in float32
    (also under autocast). Affinities are cached by (frames, top_k): a frame's key is the
    same in every bank that stores it, so equal frame lists mean equal keys."""

    def __init__(self, query_key):
        self.query_key = query_key
        self.cache = {}

    def weights(self, frames, key, top_k):
        """(softmax weights, top-k indices or None) of ``key`` (holding ``frames``) for this query;
        ``top_k`` None or at least the memory size: plain softmax over the whole memory."""
        entry = self.cache.get((frames, top_k))
        if entry is None:
            affinity = l2_affinity(key.float(), self.query_key.float())
            if top_k is not None and top_k < affinity.shape[1]:
                entry = top_k_weights(affinity, top_k)
            else:
                entry = (torch.softmax(affinity, dim=1), None)
            self.cache[(frames, top_k)] = entry
        return entry

    def read(self, frames, key, value, top_k=None):
        weights, indices = self.weights(frames, key, top_k)
        if indices is None:
            return read_memory(weights, value.float())
        return read_memory_top_k(weights, indices, value.float())

    def readouts(self, read, top_k):
        """(long-term, first-frame, previous-frame) readouts (1, K, C, h, w) of a ``MemoryRead``;
        ``top_k`` applies to the long-term readout."""
        with torch.autocast(self.query_key.device.type, enabled=False):
            m = read.memory
            return (self.read(read.frames, m.long_term_key, m.long_term_value, top_k),
                    self.read((read.first_frame,), m.first_key, m.first_value),
                    self.read((read.previous_frame,), m.previous_key, m.previous_value))
