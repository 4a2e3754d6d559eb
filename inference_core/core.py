"""The inference core: all state of one video, advanced one frame at a time.

    core = InferenceCore(network, InferenceConfig(**EVAL_DEFAULTS["davis2017"]), device)
    core.start_video()
    for t, frame in enumerate(frames):
        prob = core.step(frame, next_frame=frames[t + 1] if t + 1 < len(frames) else None,
                         mask=first_mask if t == 0 else None, new_objects=ids if t == 0 else ())

Objects are introduced with internal ids 1, 2, ... in order. Objects given in
the same frame form a group with its own memory bank (its own first frame),
so objects that first appear mid-video (YouTube-VOS) do not disturb the memory
of earlier ones. Keys are computed once per frame and shared by all groups;
the per-object probabilities of all groups are merged by soft aggregation.
"""
import dataclasses
import torch

from inference_core.memory_bank import MemoryBank
from model.aggregate import soft_aggregate
from model.sampler import IsogenousSampler
from model.value_encoder import other_objects
from util.device import amp_available
from util.tensor_util import pad_divide_by, unpad


@dataclasses.dataclass
class InferenceConfig:
    top_k: int = 4
    mem_every: int = 6
    include_last: bool = False
    sample_threshold: int = 8
    sample_fraction: float = 0.1
    anchors: tuple = (0, -2)
    seed: int = 0
    amp: bool = False

    def sampler(self):
        return IsogenousSampler(self.sample_threshold, self.sample_fraction, self.anchors, self.seed)


class InferenceCore:
    def __init__(self, network, config: InferenceConfig, device):
        self.network = network.eval()
        self.config = config
        self.device = torch.device(device)
        self.use_amp = config.amp and amp_available(self.device)
        self.start_video()

    def start_video(self):
        """Forget everything: a new video starts with no object and no memory.
        The sampler restarts from the configured seed, so a video's result does
        not depend on which videos were processed before it."""
        self.banks = []                 # one MemoryBank per group of objects
        self.group_objects = []         # internal ids (1-based) of each group
        self.group_start = []           # frame index where each group was given
        self.num_objects = 0
        self.frame_index = -1
        self.sampler = self.config.sampler()

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp)

    @torch.inference_mode()
    def step(self, frame, next_frame=None, mask=None, new_objects=()):
        """Segment one frame.

        frame, next_frame: (3, H, W) ImageNet-normalised; next_frame is needed to
        memorise this frame (frame relation) and is None for the last frame.
        mask: (H, W) int64 internal ids; new_objects: the ids given in this frame,
        which must be the next unused ids. Returns (1 + K, H, W) probabilities
        (background first) for the K objects introduced so far.
        """
        self.frame_index += 1
        t = self.frame_index
        new_objects = sorted(int(i) for i in new_objects)
        expected = list(range(self.num_objects + 1, self.num_objects + 1 + len(new_objects)))
        if new_objects != expected:
            raise ValueError(f"frame {t}: new object ids must be {expected}, got {new_objects}")
        if new_objects and mask is None:
            raise ValueError(f"frame {t}: new objects given without a mask")

        height, width = frame.shape[-2:]
        frame, pad = pad_divide_by(frame.to(self.device).unsqueeze(0))
        if next_frame is not None:
            next_frame, _ = pad_divide_by(next_frame.to(self.device).unsqueeze(0))
        if self.num_objects == 0 and not new_objects:  # nothing to segment yet
            return torch.ones(1, height, width, device=self.device)

        with self._autocast():
            key, f16, f8, f4 = self.network.encode_key(frame)
            object_prob = self._predict(key, f8, f4, frame.shape[-2:])  # (K_old, H', W')
            if new_objects:
                object_prob = self._add_objects(object_prob, mask, new_objects)
            prob = soft_aggregate(object_prob.unsqueeze(0))[0]        # (1 + K, H', W')
            if next_frame is not None:
                self._memorise(t, frame, key, f16, prob[1:], next_frame)
        return unpad(prob, pad).float()

    def _predict(self, key, f8, f4, size):
        """Per-object probabilities (K, H', W') of the existing objects."""
        probs = [key.new_zeros(0, *size, dtype=torch.float32)]
        for bank in self.banks:
            _, group_prob = self.network.segment(key, f8, f4, bank.memory(), top_k=self.config.top_k)
            probs.append(group_prob[0])
        return torch.cat(probs, dim=0)

    def _add_objects(self, object_prob, mask, new_objects):
        """Append the given objects' masks (a new group); their pixels are theirs alone."""
        mask = mask.to(self.device)
        given, _ = pad_divide_by(torch.stack([(mask == i) for i in new_objects]).float())
        object_prob = object_prob * (1 - given.sum(0, keepdim=True).clamp(max=1))
        self.group_objects.append(new_objects)
        self.group_start.append(self.frame_index)
        self.banks.append(MemoryBank(self.sampler, self.config.top_k))
        self.num_objects += len(new_objects)
        return torch.cat([object_prob, given], dim=0)

    def _memorise(self, t, frame, key, f16, object_prob, next_frame):
        """Encode this frame's values for the groups that memorise it: a group's
        first frame, then every ``mem_every``-th frame after it (long-term and
        previous-frame memory), other frames as temporary memory with ``include_last``."""
        due = [g for g, start in enumerate(self.group_start) if (t - start) % self.config.mem_every == 0]
        temporary = [g for g in range(len(self.banks)) if g not in due] if self.config.include_last else []
        groups = due + temporary
        if not groups:
            return
        index = [i - 1 for g in groups for i in self.group_objects[g]]
        # "Other objects" covers every object of every group, not only the encoded ones.
        others = other_objects(object_prob.unsqueeze(0))[:, index]
        value, pos_value = self.network.encode_value(frame, f16, object_prob[index].unsqueeze(0), next_frame, others)
        offset = 0
        for g in groups:
            count = len(self.group_objects[g])
            v, pv = value[:, offset:offset + count], pos_value[:, offset:offset + count]
            offset += count
            if g in due:
                self.banks[g].add(t, key, v, pv)
            else:
                self.banks[g].set_temporary(t, key, v, pv)
