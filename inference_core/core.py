"""The inference core: all state of one video, advanced one frame at a time.

    core = InferenceCore(network, PRESETS["davis2017"], device)
    for result in core.run(frames, given={0: (first_mask, [1, 2])}):
        labels = result.prob.argmax(0)  # (1 + K, H, W) probabilities, background first

``run`` is the one frame loop (scripts, benchmarks and tests use it); it calls
``will_process`` / ``skip`` / ``step``, which can also be called one frame at a time.

Objects are introduced with internal ids 1, 2, ... in order. Objects given in the
same frame form a group with its own memory bank (its own first frame). Keys are
computed once per frame and shared by all groups; the per-object probabilities of
all groups are merged by soft aggregation. How the memory is filled is the
procedure's business (inference_core/procedures.py: the reference's ``davis`` and
``youtube``); which long-term frames a query reads, the isogenous sampler's
(inference_core/sampler.py); the network calls, the backend's
(inference_core/backend.py: PyTorch, or ONNX Runtime).

The last frame is never memorised (its value needs the next frame). An object
first given on the last frame is therefore output from its mask there and has no
memory (the reference crashes in that case).

Corrections (project's own, for the interactive demo; interactive/session.py): a mask
given at frame t for objects introduced earlier REPLACES their prediction there
(``step(..., corrected_objects=ids)``, or a third element of ``run``'s ``given``): the
corrected objects' pixels become theirs alone, as for new objects, and the frame is
memorised by the groups of the corrected objects whatever the schedule (youtube: the
schedule restarts there, as at a frame that introduces objects). Without corrections
nothing changes.
"""
import random
import time
from dataclasses import dataclass
from typing import Optional

import torch

from inference_core.backend import TorchBackend
from inference_core.memory_bank import MemoryBank
from inference_core.procedures import make_procedure
from inference_core.sampler import IsogenousSampler
from model.aggregate import soft_aggregate
from model.value_encoder import other_objects
from util.config import InferenceConfig  # noqa: F401  (the core's config; imported from here by users)
from util.device import inference_dtype, synchronize
from util.tensor_util import pad_divide_by, unpad


@dataclass
class FrameResult:
    """A frame ``InferenceCore.run`` processed: its probabilities (1 + K, H, W), whether it
    was asked for as an output, and with ``run(..., timed=True)`` the seconds spent in ``step``
    (device synchronised before and after; None otherwise)."""
    index: int
    prob: torch.Tensor
    output: bool
    seconds: Optional[float] = None


@dataclass
class MemoryState:
    """What the memory of one object holds (``InferenceCore.memory_state``)."""
    frames: list            # video frames in its long-term memory, oldest first
    memorised: int          # frames memorised since its group started (stored or evicted)
    last_read: list         # frames its last long-term readout read (None before the first)
    temporary: int          # frame kept as temporary memory (include_last), or None
    store_slots: int        # frames the long-term store has room for now
    transfers: list         # (key frames, value frames) copied out of the store by the last read


def memory_store_device(config: InferenceConfig, device: torch.device) -> torch.device:
    """Where a core computing on ``device`` keeps the long-term memory: the CPU with
    ``config.offload_memory`` on CUDA (only the frames read go to the GPU), else ``device``."""
    return torch.device("cpu") if config.offload_memory and device.type == "cuda" else device


class InferenceCore:
    def __init__(self, network, config: InferenceConfig, device):
        """``network``: an ``IMSFR`` (run by ``TorchBackend``) or a backend with the same three
        calls. The long-term memory lives on ``memory_store_device(config, device)``."""
        self.backend = TorchBackend(network) if isinstance(network, torch.nn.Module) else network
        self.config = config
        self.device = torch.device(device)
        self.store_device = memory_store_device(config, self.device)
        # What the convolutions compute in (config.precision on this device; util/device.py).
        self.dtype = inference_dtype(config.precision, self.device)
        self.procedure = make_procedure(config)
        self.start_video()

    @property
    def network(self):
        """The backend's network (``IMSFR`` with the PyTorch backend)."""
        return getattr(self.backend, "network", None)

    def start_video(self):
        """Forget everything: a new video starts with no object and no memory.
        The sampler restarts from the configured seed, so a video's result does
        not depend on which videos were processed before it."""
        self.banks = []                 # one MemoryBank per group of objects
        self.group_start = []           # frame index where each group was given
        self.num_objects = 0
        self.frame_index = -1
        self.processed = 0              # frames run through the network
        self.sampler = IsogenousSampler(self.config)
        self.procedure.start_video()

    @property
    def use_amp(self):
        """Whether the steps run under autocast (a reduced ``dtype``)."""
        return self.dtype != torch.float32

    def autocast(self):
        """The autocast context of this core's steps (``dtype``; disabled in float32)."""
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.use_amp)

    # ---- the frame loop ------------------------------------------------------------
    def run(self, frames, given, outputs=None, timed=False):
        """Segment a video: yields a ``FrameResult`` for every frame run through the network.

        ``frames``: a sequence of (3, H, W) ImageNet-normalised frames (``len`` and
        indexing; frames are requested in increasing order, at most two at a time, so a
        lazy sequence never holds the video). ``given``: {t: (mask (H, W) internal ids,
        new object ids)} or {t: (mask, new ids, corrected ids)} (corrections: masks of
        known objects that replace their prediction; see ``step``). ``outputs``: the
        frames wanted (None: all); frames that are neither outputs nor memorised are
        skipped, as in the reference. ``timed``: each result's ``seconds`` in ``step``, the device
        synchronised before and after every frame (the benchmarks, the eval scripts' FPS);
        otherwise no synchronisation, so a GPU's work overlaps the caller's.
        """
        self.start_video()
        count = len(frames)
        ahead = None  # (t, frame): the previous step's next frame
        for t in range(count):
            mask, new, corrected = (*given[t], ())[:3] if t in given else (None, (), ())
            last = t + 1 == count
            output = outputs is None or t in outputs
            if not self.will_process(output=output, new_objects=bool(new), last=last, corrected=bool(corrected)):
                self.skip()
                continue
            current = ahead[1] if ahead is not None and ahead[0] == t else frames[t]
            following = None if last else frames[t + 1]
            ahead = (t + 1, following)
            if not timed:
                yield FrameResult(t, self.step(current, following, mask=mask, new_objects=new,
                                               corrected_objects=corrected), output)
                continue
            synchronize(self.device)
            start = time.perf_counter()
            prob = self.step(current, following, mask=mask, new_objects=new, corrected_objects=corrected)
            synchronize(self.device)
            yield FrameResult(t, prob, output, time.perf_counter() - start)

    def will_process(self, output=True, new_objects=False, last=False, corrected=False):
        """Whether the next frame must go through the network: it is an output,
        introduces or corrects objects, or is memorised (or kept with ``include_last``).
        Frames before the first object need no network either."""
        if new_objects or corrected:
            return True
        if self.num_objects == 0:
            return bool(output)
        if output or self.config.include_last:
            return True
        return not last and bool(self.procedure.groups_to_memorise(self.frame_index + 1, self.group_start, False))

    def skip(self):
        """Pass over a frame that ``will_process`` said nothing needs."""
        self.frame_index += 1

    # ---- one frame ---------------------------------------------------------------
    @torch.inference_mode()
    def step(self, frame, next_frame=None, mask=None, new_objects=(), corrected_objects=()):
        """Segment one frame.

        frame, next_frame: (3, H, W) ImageNet-normalised; next_frame is needed to
        memorise this frame (frame relation) and is None for the last frame.
        mask: (H, W) int64 internal ids; new_objects: the ids given in this frame,
        which must be the next unused ids; corrected_objects: ids of known objects
        whose mask in ``mask`` replaces their prediction (their pixels become theirs
        alone; the frame is memorised by their groups). Returns (1 + K, H, W)
        probabilities (background first) for the K objects introduced so far.
        """
        self.frame_index += 1
        t = self.frame_index
        new_objects = sorted(int(i) for i in new_objects)
        corrected_objects = sorted(int(i) for i in corrected_objects)
        expected = list(range(self.num_objects + 1, self.num_objects + 1 + len(new_objects)))
        if new_objects != expected:
            raise ValueError(f"frame {t}: new object ids must be {expected}, got {new_objects}")
        if any(not 1 <= i <= self.num_objects for i in corrected_objects):
            raise ValueError(f"frame {t}: corrected object ids must be known objects (1..{self.num_objects}), "
                             f"got {corrected_objects}")
        if (new_objects or corrected_objects) and mask is None:
            raise ValueError(f"frame {t}: objects given without a mask")

        height, width = frame.shape[-2:]
        if self.num_objects == 0 and not new_objects:  # nothing to segment yet
            return torch.ones(1, height, width, device=self.device)
        frame, pad = pad_divide_by(frame.to(self.device).unsqueeze(0))
        if next_frame is not None:
            next_frame, _ = pad_divide_by(next_frame.to(self.device).unsqueeze(0))

        self.processed += 1
        with self.autocast():
            key, f16, f8, f4 = self.backend.encode_key(frame)
            object_prob = self._predict(key, f8, f4, frame.shape[-2:])  # (K_old, H', W')
            if corrected_objects:
                object_prob = self._correct(object_prob, mask, corrected_objects)
            if new_objects:
                object_prob = self._add_objects(object_prob, mask, new_objects)
            prob = soft_aggregate(object_prob.unsqueeze(0))[0]        # (1 + K, H', W')
            if next_frame is not None:
                self._memorise(t, frame, key, f16, prob[1:], next_frame, bool(new_objects), corrected_objects)
        return unpad(prob, pad).float()

    def _predict(self, key, f8, f4, size):
        """Per-object probabilities (K, H', W') of the existing objects, in id order: every
        group's reads (sampler draws in group order) segmented by the backend in one call."""
        reads, parts = [], []  # parts: (objects, from the backend?) in id order
        for bank in self.banks:
            if bank.num_frames == 0:  # given on a frame without a next one: no memory
                parts.append((len(bank.objects), False))
                continue
            for read in bank.reads(self.sampler, self.procedure.per_object_draws):
                reads.append(read)
                parts.append((len(read.objects), True))
        decoded = self.backend.segment(key, f8, f4, reads, self.config.top_k) if reads else None
        probs, offset = [key.new_zeros(0, *size, dtype=torch.float32)], 0
        for count, from_backend in parts:
            if from_backend:
                probs.append(decoded[offset:offset + count])
                offset += count
            else:
                probs.append(key.new_zeros(count, *size, dtype=torch.float32))
        return torch.cat(probs, dim=0)

    def _add_objects(self, object_prob, mask, new_objects):
        """Append the given objects' masks (a new group); their pixels are theirs alone.
        How the known objects enter is the procedure's (youtube: aggregated first)."""
        mask = mask.to(self.device)
        given, _ = pad_divide_by(torch.stack([(mask == i) for i in new_objects]).float())
        object_prob = self.procedure.known_objects(object_prob)
        object_prob = object_prob * (1 - given.sum(0, keepdim=True).clamp(max=1))
        self.group_start.append(self.frame_index)
        self.banks.append(self._new_bank(new_objects))
        self.num_objects += len(new_objects)
        return torch.cat([object_prob, given], dim=0)

    def _correct(self, object_prob, mask, corrected):
        """Replace the corrected objects' probabilities by their given masks; their pixels are theirs alone."""
        given, _ = pad_divide_by(torch.stack([(mask.to(self.device) == i) for i in corrected]).float())
        object_prob = object_prob * (1 - given.sum(0, keepdim=True).clamp(max=1))
        object_prob[[i - 1 for i in corrected]] = given
        return object_prob

    def _new_bank(self, objects):
        """A memory bank; with a budget its reservoir has its own stream, seeded
        from the config's seed and the group (the sampler's stream is untouched)."""
        budget = self.config.memory_budget
        rng = random.Random(f"imsfr-reservoir:{self.config.seed}:{len(self.banks)}") if budget is not None else None
        offloaded = self.store_device != self.device
        return MemoryBank(objects, budget=budget, anchors=self.config.anchors, rng=rng,
                          store_device=self.store_device, compute_device=self.device,
                          pin=offloaded and self.store_device.type == "cpu" and torch.cuda.is_available())

    def _memorise(self, t, frame, key, f16, object_prob, next_frame, introduces, corrected=()):
        """Encode this frame's values for the groups that memorise it (long-term
        and previous-frame memory; the groups of ``corrected`` objects always), other
        groups' as temporary memory with ``include_last``."""
        due = self.procedure.groups_to_memorise(t, self.group_start, introduces)
        if corrected:
            due = sorted(set(due) | {g for g, bank in enumerate(self.banks) if set(bank.objects) & set(corrected)})
        if due:
            self.procedure.memorised(t)
        temporary = [g for g in range(len(self.banks)) if g not in due] if self.config.include_last else []
        groups = due + temporary
        if not groups:
            return
        index = [i - 1 for g in groups for i in self.banks[g].objects]
        # "Other objects" covers every object of every group, not only the encoded ones.
        others = other_objects(object_prob.unsqueeze(0))[:, index]
        value, pos_value = self.backend.encode_value(frame, f16, object_prob[index].unsqueeze(0), next_frame, others)
        key, value, pos_value = self._stored(key), self._stored(value), self._stored(pos_value)
        offset = 0
        for g in groups:
            count = len(self.banks[g].objects)
            v, pv = value[:, offset:offset + count], pos_value[:, offset:offset + count]
            offset += count
            if g in due:
                self.banks[g].add(t, key, v, pv)
            else:
                self.banks[g].set_temporary(t, key, v, pv)

    @staticmethod
    def _stored(tensor):
        """A memory tensor as the memory holds it: float32, in every precision. Exact (it was
        computed in the reduced type), so the readouts see the same numbers as from a
        reduced-type memory, with no float32 copy of the frames read on every read
        (docs/speed.md: measured). A no-op in float32."""
        return tensor.float()

    # ---- what the memory holds (diagnostics, tests, benchmarks) ------------------------
    def _bank_of(self, object_id):
        for bank in self.banks:
            if object_id in bank.objects:
                return bank
        raise KeyError(f"no object {object_id}")

    def memory_frames(self, object_id):
        """Video frame indices in the long-term memory of an object."""
        return list(self._bank_of(object_id).frame_indices)

    def memory_state(self, object_id):
        """A ``MemoryState`` of the memory an object reads."""
        bank = self._bank_of(object_id)
        return MemoryState(list(bank.frame_indices), bank.memorised, bank.last_read.get(object_id),
                           bank.temporary_frame, bank.store_slots, list(bank.transfers))

    def held_bytes(self):
        """Bytes of every memory tensor the core holds (all banks)."""
        return sum(bank.held_bytes() for bank in self.banks)
