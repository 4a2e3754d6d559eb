"""The inference core: all state of one video, advanced one frame at a time.

    core = InferenceCore(network, InferenceConfig(**EVAL_DEFAULTS["davis2017"]), device)
    core.start_video()
    for t, frame in enumerate(frames):
        if not core.will_process(output=True, new_objects=t == 0, last=t == len(frames) - 1):
            core.skip()                 # a frame nothing needs (sparse outputs)
            continue
        prob = core.step(frame, next_frame=frames[t + 1] if t + 1 < len(frames) else None,
                         mask=first_mask if t == 0 else None, new_objects=ids if t == 0 else ())

Objects are introduced with internal ids 1, 2, ... in order. Objects given in
the same frame form a group with its own memory bank (its own first frame).
Keys are computed once per frame and shared by all groups; the per-object
probabilities of all groups are merged by soft aggregation. How the memory
is filled follows the reference's two procedures (``InferenceConfig.procedure``):

* ``davis``: one sampler draw per group and query; a group memorises its first
  frame and every ``mem_every``-th frame after it (``t % mem_every == 0`` when
  it starts at frame 0, as the reference). Objects given mid-video (which the
  reference's DAVIS code cannot take) start their own group.
* ``youtube``: one draw per object and query, objects in id order (the
  reference keeps one bank per object; objects of a group read the same
  frames, so they are batched whenever no draw happens). A frame that
  introduces objects is built by aggregating the known objects, zeroing them
  under the new masks, inserting the masks and aggregating again; it is
  memorised for every object (a new object's first frame) and restarts the
  schedule: a later frame t is memorised when ``t - last memorised >= mem_every``.

The last frame is never memorised (its value needs the next frame). An object
first given on the last frame is therefore output from its mask there and has
no memory (the reference crashes in that case).
"""
import dataclasses
import random
from typing import Optional

import torch

from inference_core.memory_bank import MemoryBank, minimum_budget
from model.aggregate import soft_aggregate
from model.sampler import IsogenousSampler
from model.value_encoder import other_objects
from util.config import EVAL_DEFAULTS, PROCEDURES
from util.device import amp_dtype, inference_amp_available
from util.tensor_util import pad_divide_by, unpad


_DAVIS2017 = EVAL_DEFAULTS["davis2017"]


@dataclasses.dataclass
class InferenceConfig:
    """Memory and sampler settings; the defaults are DAVIS 2017's (util/config.py)."""
    top_k: int = _DAVIS2017["top_k"]
    mem_every: int = _DAVIS2017["mem_every"]
    include_last: bool = False
    sample_threshold: int = _DAVIS2017["sample_threshold"]
    sample_fraction: float = _DAVIS2017["sample_fraction"]
    anchors: tuple = _DAVIS2017["anchors"]
    procedure: str = _DAVIS2017["procedure"]
    seed: int = 0
    amp: bool = False
    # Project's own (README, "Long videos"): at most this many long-term frames per memory
    # bank, anchors kept, the rest a reservoir sample (inference_core/memory_bank.py). None:
    # every memorised frame, as the reference.
    memory_budget: Optional[int] = None
    # CUDA: the long-term store in pinned CPU memory, only the frames read go to the GPU.
    offload_memory: bool = False

    def __post_init__(self):
        if self.procedure not in PROCEDURES:
            raise ValueError(f"procedure must be one of {', '.join(PROCEDURES)}, got {self.procedure!r}")
        if self.mem_every < 1 or self.top_k < 1:
            raise ValueError(f"mem_every and top_k must be at least 1, got {self.mem_every} and {self.top_k}")
        if self.memory_budget is not None and self.memory_budget < minimum_budget(self.anchors):
            raise ValueError(f"memory_budget must be at least {minimum_budget(self.anchors)} for the anchors "
                             f"{tuple(self.anchors)} (they are kept, plus one reservoir slot), got {self.memory_budget}")

    def sampler(self):
        return IsogenousSampler(self.sample_threshold, self.sample_fraction, self.anchors, self.seed)


class InferenceCore:
    def __init__(self, network, config: InferenceConfig, device, store_device=None):
        """``store_device``: where the long-term memory lives (default: CPU with
        ``config.offload_memory`` on CUDA, else ``device``)."""
        self.network = network.eval()
        self.config = config
        self.device = torch.device(device)
        if store_device is None:
            store_device = "cpu" if config.offload_memory and self.device.type == "cuda" else self.device
        self.store_device = torch.device(store_device)
        self.use_amp = config.amp and inference_amp_available(self.device)
        self.per_object_draws = config.procedure == "youtube"
        self.start_video()

    def start_video(self):
        """Forget everything: a new video starts with no object and no memory.
        The sampler restarts from the configured seed, so a video's result does
        not depend on which videos were processed before it."""
        self.banks = []                 # one MemoryBank per group of objects
        self.group_start = []           # frame index where each group was given
        self.num_objects = 0
        self.frame_index = -1
        self.last_memorised = None      # youtube procedure: the schedule counts from here
        self.processed = 0              # frames run through the network
        self.sampler = self.config.sampler()

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=amp_dtype(self.device), enabled=self.use_amp)

    # ---- which frames need the network -----------------------------------------
    def _due_groups(self, t, introduces):
        """Groups that memorise frame t (given it has a next frame)."""
        if self.config.procedure == "youtube":
            due = introduces or (self.last_memorised is not None
                                 and t - self.last_memorised >= self.config.mem_every)
            return list(range(len(self.banks))) if due else []
        return [g for g, start in enumerate(self.group_start) if (t - start) % self.config.mem_every == 0]

    def will_process(self, output=True, new_objects=False, last=False):
        """Whether the next frame must go through the network: it is an output,
        introduces objects, or is memorised (or kept with ``include_last``).
        Frames before the first object need no network either."""
        if new_objects:
            return True
        if self.num_objects == 0:
            return bool(output)
        if output or self.config.include_last:
            return True
        return not last and bool(self._due_groups(self.frame_index + 1, False))

    def skip(self):
        """Pass over a frame that ``will_process`` said nothing needs."""
        self.frame_index += 1

    # ---- one frame ---------------------------------------------------------------
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
        if self.num_objects == 0 and not new_objects:  # nothing to segment yet
            return torch.ones(1, height, width, device=self.device)
        frame, pad = pad_divide_by(frame.to(self.device).unsqueeze(0))
        if next_frame is not None:
            next_frame, _ = pad_divide_by(next_frame.to(self.device).unsqueeze(0))

        self.processed += 1
        with self._autocast():
            key, f16, f8, f4 = self.network.encode_key(frame)
            object_prob = self._predict(key, f8, f4, frame.shape[-2:])  # (K_old, H', W')
            if new_objects:
                object_prob = self._add_objects(object_prob, mask, new_objects)
            prob = soft_aggregate(object_prob.unsqueeze(0))[0]        # (1 + K, H', W')
            if next_frame is not None:
                self._memorise(t, frame, key, f16, prob[1:], next_frame, bool(new_objects))
        return unpad(prob, pad).float()

    def _predict(self, key, f8, f4, size):
        """Per-object probabilities (K, H', W') of the existing objects, in id order.
        The query's shared work is done once per frame (``IMSFR.prepare_query``), each
        group/draw is read and fused, and all objects are decoded in one batch
        (inference_core/baseline.py keeps the per-read ``segment`` as the measuring stick)."""
        query, reads = None, []  # per read: (objects, fused readouts (1, n, C, h, w) or None: no memory)
        for bank in self.banks:
            if bank.num_frames == 0:  # given on a frame without a next one: no memory
                reads.append((len(bank.objects), None))
                continue
            if query is None:
                query = self.network.prepare_query(key, f8, f4)
            for _, memory in bank.reads(self.sampler, self.per_object_draws):
                fused = self.network.read_and_fuse(query, memory, top_k=self.config.top_k)
                reads.append((fused.shape[1], fused))
        fused = [f for _, f in reads if f is not None]
        decoded = self.network.decode(query, torch.cat(fused, dim=1))[0] if fused else None
        probs, offset = [key.new_zeros(0, *size, dtype=torch.float32)], 0
        for n, f in reads:
            if f is None:
                probs.append(key.new_zeros(n, *size, dtype=torch.float32))
            else:
                probs.append(decoded[offset:offset + n])
                offset += n
        return torch.cat(probs, dim=0)

    def _add_objects(self, object_prob, mask, new_objects):
        """Append the given objects' masks (a new group); their pixels are theirs alone.

        youtube: the known objects enter as their aggregated probabilities (the
        output they would have had), so this frame is aggregated twice, as the
        reference builds it; davis: as their network probabilities."""
        mask = mask.to(self.device)
        given, _ = pad_divide_by(torch.stack([(mask == i) for i in new_objects]).float())
        if self.config.procedure == "youtube" and len(object_prob):
            object_prob = soft_aggregate(object_prob.unsqueeze(0))[0, 1:]
        object_prob = object_prob * (1 - given.sum(0, keepdim=True).clamp(max=1))
        self.group_start.append(self.frame_index)
        self.banks.append(self._new_bank(new_objects))
        self.num_objects += len(new_objects)
        return torch.cat([object_prob, given], dim=0)

    def _new_bank(self, objects):
        """A memory bank; with a budget its reservoir has its own stream, seeded
        from the config's seed and the group (the sampler's stream is untouched)."""
        budget = self.config.memory_budget
        rng = random.Random(f"imsfr-reservoir:{self.config.seed}:{len(self.banks)}") if budget is not None else None
        offloaded = self.store_device != self.device
        return MemoryBank(objects, budget=budget, anchors=self.config.anchors, rng=rng,
                          store_device=self.store_device, compute_device=self.device,
                          pin=offloaded and self.store_device.type == "cpu" and torch.cuda.is_available())

    def _memorise(self, t, frame, key, f16, object_prob, next_frame, introduces):
        """Encode this frame's values for the groups that memorise it (long-term
        and previous-frame memory), other groups' as temporary memory with ``include_last``."""
        due = self._due_groups(t, introduces)
        if due and self.config.procedure == "youtube":
            self.last_memorised = t
        temporary = [g for g in range(len(self.banks)) if g not in due] if self.config.include_last else []
        groups = due + temporary
        if not groups:
            return
        index = [i - 1 for g in groups for i in self.banks[g].objects]
        # "Other objects" covers every object of every group, not only the encoded ones.
        others = other_objects(object_prob.unsqueeze(0))[:, index]
        value, pos_value = self.network.encode_value(frame, f16, object_prob[index].unsqueeze(0), next_frame, others)
        offset = 0
        for g in groups:
            count = len(self.banks[g].objects)
            v, pv = value[:, offset:offset + count], pos_value[:, offset:offset + count]
            offset += count
            if g in due:
                self.banks[g].add(t, key, v, pv)
            else:
                self.banks[g].set_temporary(t, key, v, pv)

    def memory_frames(self, object_id):
        """Video frame indices in the long-term memory of an object (diagnostics, tests)."""
        for bank in self.banks:
            if object_id in bank.objects:
                return list(bank.frame_indices)
        raise KeyError(f"no object {object_id}")
