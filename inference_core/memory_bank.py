"""The memories a group of objects reads at inference.

* long-term: the memorised frames (key + value), read through the isogenous
  sampler with a top-k softmax; every memorised frame, or with a memory
  budget a bounded store (see below);
* first frame: the frame where the group's objects were given;
* previous frame: the last memorised frame's key with its positional-encoded value;
* temporary (``include_last``): the last processed frame, kept for one step.

Keys: (1, C, T, h, w); values: (1, K, C, T, h, w) for the group's K objects.
All objects of a group have the same memory frames. Whether they share one
sampler draw per query (the reference's DAVIS banks) or draw one each (its
YouTube-VOS banks, one per object) is the caller's choice (``reads``). A read is a ``MemoryRead``:
the objects read, the frames read, and the tensors as a ``MemoryRecord``.

Memory budget (``budget=N``, the project's own; ``None`` = every frame, as the
reference). The long-term store holds at most N frames:

* the *anchors* the sampler always reads are kept outside eviction: the first
  ``head`` memorised frames (memory frames 0 .. largest non-negative anchor)
  and the ``tail`` newest ones (T - tail .. T - 1, tail = largest negative
  anchor's distance, at least 1: the newest frame);
* the other ``N - head - tail`` slots are a reservoir (Algorithm R). The recent
  window slides: when a frame is memorised, the oldest frame of the window
  leaves it and is offered to the reservoir as its next candidate. With T'
  candidates so far each of them is in the reservoir with probability
  min(1, R / T') whatever its age (R reservoir slots).

The stored frames in time order ([head, reservoir by age, tail]) form a memory
of S <= N frames, and the read is the preset's sampler applied to it: anchor 1
is memory frame 1, anchor -2 the second newest memory frame, as without a
budget; drawn frames come from the S - 1 oldest stored frames. Evicted slots
are overwritten in place; nothing grows with the video length.
"""
from dataclasses import dataclass

import torch

from inference_core.frame_store import EveryFrameIndex, FrameStore, ReservoirIndex
from model.memory_readout import MemoryRecord
from util.config import anchor_span


@dataclass
class MemoryRead:
    """One readout of some of a group's objects: who reads, which frames, and the tensors.
    The frame indices also identify the keys (a frame's key is the same wherever it is
    stored), so a reader can share an affinity between reads of the same frames."""
    objects: list          # internal ids of the objects read, in the order of the values
    frames: tuple          # video frames of the long-term readout (anchors first; repeats allowed)
    first_frame: int       # video frame of the first-frame memory
    previous_frame: int    # video frame of the previous-frame memory
    memory: MemoryRecord


class MemoryBank:
    def __init__(self, objects, budget=None, anchors=(), rng=None, store_device=None, compute_device=None,
                 pin=False):
        """``budget``: at most this many long-term frames (None: all); ``anchors``:
        the sampler's anchors (kept outside eviction); ``rng``: the reservoir's
        random stream. ``store_device``: where the long-term store lives (default:
        where the frames are computed); ``compute_device``: where reads go
        (default: where the keys are computed)."""
        self.objects = list(objects)    # internal ids of the group's objects
        self.budget = budget
        self.keys = FrameStore(dim=2, capacity=budget, device=store_device, pin=pin)
        self.values = FrameStore(dim=3, capacity=budget, device=store_device, pin=pin)
        self.index = EveryFrameIndex() if budget is None else ReservoirIndex(budget, *anchor_span(anchors), rng)
        self.compute_device = None if compute_device is None else torch.device(compute_device)
        self.first = None               # (frame index, key, value) of the first-frame memory
        self.previous = None            # (frame index, key, positional value) of the previous-frame memory
        self.temporary = None           # (frame index, key, value, positional value), include_last
        self.last_read = {}             # object id -> frames its last long-term readout read
        self.transfers = []             # (key frames, value frames) copied out of the store by the last reads

    # ---- what the bank holds (public: tests, benchmarks, diagnostics) ------------------
    @property
    def frame_indices(self):
        """Video frame indices of the stored long-term memory frames, oldest first."""
        return [frame for frame, _ in self.index.entries()]

    @property
    def num_frames(self):
        """Frames in the long-term store (with a budget: at most the budget)."""
        return len(self.index.entries())

    @property
    def memorised(self):
        """Frames memorised since the group started (stored or evicted)."""
        return self.index.memorised

    @property
    def temporary_frame(self):
        """The frame kept as temporary memory (``include_last``), or None."""
        return None if self.temporary is None else self.temporary[0]

    @property
    def store_slots(self):
        """Frames the long-term store has room for now (a budget's store is allocated once)."""
        return 0 if self.keys.buffer is None else self.keys.buffer.shape[2]

    def frame_bytes(self):
        """(key bytes, value bytes per object) of one memory frame."""
        _, key, value = self.first
        return key[:, :, 0].nelement() * key.element_size(), value[:, :1, :, 0].nelement() * value.element_size()

    @property
    def store_bytes(self):
        """Bytes of the long-term store (keys and values, allocated slots)."""
        return self.keys.nbytes + self.values.nbytes

    def held_bytes(self):
        """Bytes of every tensor this bank holds (the store, first, previous and temporary memories)."""
        tensors = [] if self.first is None else [self.first[1], self.first[2], self.previous[1], self.previous[2]]
        if self.temporary is not None:
            tensors += list(self.temporary[1:])
        return self.store_bytes + sum(t.nelement() * t.element_size() for t in tensors)

    # ---- writing -------------------------------------------------------------------------
    def add(self, frame_index, key, value, pos_value):
        """Memorise a frame: key (1, C, h, w), value/pos_value (1, K, C, h, w).
        The first frame added is also the first-frame memory."""
        key, value = key.unsqueeze(2), value.unsqueeze(3)
        if self.first is None:
            self.first = (frame_index, key, value)
            if self.compute_device is None:
                self.compute_device = key.device
        slot = self.index.add(frame_index)
        if self.budget is None:
            self.keys.append(key)
            self.values.append(value)
        else:
            self.keys.put(slot, key)
            self.values.put(slot, value)
        self.previous = (frame_index, key, pos_value.unsqueeze(3))
        self.temporary = None

    def set_temporary(self, frame_index, key, value, pos_value):
        self.temporary = (frame_index, key.unsqueeze(2), value.unsqueeze(3), pos_value.unsqueeze(3))

    # ---- reading -------------------------------------------------------------------------
    def reads(self, sampler, per_object):
        """The reads of this query frame, as [MemoryRead].

        ``per_object``: each object draws its own frames (in object order) as the
        reference's per-object YouTube-VOS banks; otherwise one draw serves the
        whole group. Objects that read the same frames are read in one batch.
        Draws index the stored frames in time order (``frame_indices``).

        With a temporary frame (``include_last``) the long-term readout reads
        every memory frame plus the temporary one without sampling. The
        previous-frame readout then uses the temporary frame's own key and
        positional value (the project's choice: the reference crashes there).
        """
        self.transfers = []
        frames = self.frame_indices
        if self.temporary is not None:
            t, key, value, pos_value = self.temporary
            stored_key, stored_value = self._gather(None, slice(None))
            memory = MemoryRecord(torch.cat([stored_key, key], dim=2), torch.cat([stored_value, value], dim=3),
                                  self.first[1], self.first[2], key, pos_value)
            self.last_read = {o: frames + [t] for o in self.objects}
            return [MemoryRead(list(self.objects), tuple(frames + [t]), self.first[0], t, memory)]
        draws = [sampler.select(self.num_frames) if sampler is not None else None
                 for _ in (self.objects if per_object else [None])]
        if all(chosen is None for chosen in draws):
            self.last_read = {o: list(frames) for o in self.objects}
            return [self._read(None, slice(None), frames)]
        reads = []
        for k, chosen in enumerate(draws):
            objects = slice(k, k + 1) if per_object else slice(None)
            read = self._read(chosen, objects, frames)
            for o in read.objects:
                self.last_read[o] = list(read.frames)
            reads.append(read)
        return reads

    def _read(self, chosen, objects, frames):
        key, value = self._gather(chosen, objects)
        read_frames = tuple(frames) if chosen is None else tuple(frames[i] for i in chosen)
        memory = MemoryRecord(key, value, self.first[1], self.first[2][:, objects],
                              self.previous[1], self.previous[2][:, objects])
        return MemoryRead(self.objects[objects], read_frames, self.first[0], self.previous[0], memory)

    def _gather(self, chosen, objects):
        """Keys and values (objects only) of the stored frames at time-order
        positions ``chosen`` (None: all, oldest first), on the compute device."""
        if self.budget is None and chosen is None:
            key, value = self.keys.all(), self.values.all()[:, objects]
        else:
            order = [slot for _, slot in self.index.entries()]
            slots = order if chosen is None else [order[i] for i in chosen]
            index = torch.tensor(slots, dtype=torch.long, device=self.keys.buffer.device)
            key = self.keys.select(index)
            value = self.values.buffer[:, objects].index_select(3, index)
        self.transfers.append((key.shape[2], value.shape[3]))
        return key.to(self.compute_device), value.to(self.compute_device)
