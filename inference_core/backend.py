"""The network calls of the inference core, behind one small interface.

``InferenceCore`` needs three things from a network: the key of a frame
(``encode_key``), the memory values of a frame (``encode_value``) and the object
probabilities of a query frame given its memory reads (``segment``). The memory
bank, the sampler and the aggregation stay in the core, so another backend (ONNX
Runtime, inference_core/onnx_backend.py) only has to provide these three calls.

``TorchBackend`` runs an ``IMSFR`` with the per-frame work shared: the decoder's
query part once per frame, affinities once per memory key and frame
(inference_core/memory_reader.py), and every object of the frame decoded in one batch.
"""
import torch

from inference_core.memory_reader import FrameReader


class TorchBackend:
    def __init__(self, network):
        self.network = network.eval()
        # Channels-last weights (inference_core/build.py: build_core): give the first conv a
        # channels-last frame too, so oneDNN does not convert layouts back and forth.
        self.channels_last = network.key_comp.weight.is_contiguous(memory_format=torch.channels_last)

    def encode_key(self, frame):
        """frame (1, 3, H, W), H and W multiples of 16 -> key (1, 512, h, w), f16, f8, f4."""
        if self.channels_last:
            frame = frame.contiguous(memory_format=torch.channels_last)
        return self.network.encode_key(frame)

    def encode_value(self, frame, key_f16, masks, next_frame, others):
        """Values and positional values (1, K, 512, h, w) of K objects' probabilities ``masks``
        (1, K, H, W) with the next frame (frame relation); ``others``: the other objects' sum."""
        return self.network.encode_value(frame, key_f16, masks, next_frame, others)

    def segment(self, key, f8, f4, reads, top_k):
        """Probabilities (N, H, W) of the objects of ``reads`` (``MemoryRead``s, in order)."""
        prepared = self.network.prepare_decoder(key, f8, f4)
        reader = FrameReader(key)
        fused = []
        for read in reads:
            long_term, first, previous = reader.readouts(read, top_k)
            count = long_term.shape[1]
            objects = self.network.fuse(long_term.flatten(0, 1), first.flatten(0, 1), previous.flatten(0, 1))
            fused.append(objects.view(1, count, *objects.shape[1:]))
        return self.network.decode(prepared, torch.cat(fused, dim=1)[0])
