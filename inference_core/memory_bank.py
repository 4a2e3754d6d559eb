"""The memories a group of objects reads at inference.

* long-term: the memorised frames (key + value), read through the isogenous
  sampler with a top-k softmax; every memorised frame, or with a memory
  budget a bounded store (see below);
* first frame ("global"): the frame where the group's objects were given;
* previous ("adjacent"): the last memorised frame's key with its
  positional-encoded value;
* temporary (``include_last``): the last processed frame, kept for one step.

Keys: (1, C, T, h, w); values: (1, K, C, T, h, w) for the group's K objects.
All objects of a group have the same memory frames. Whether they share one
sampler draw per query (the reference's DAVIS banks) or draw one each (its
YouTube-VOS banks, one per object) is the caller's choice (``reads``).

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
import collections

import torch

_CHUNK = 16  # frames added to an unbounded store's capacity at a time (at least)


def anchor_span(anchors):
    """(head, tail): memory frames kept outside a budget's eviction for these
    sampler anchors: the first ``head`` and the last ``tail`` (>= 1) frames."""
    anchors = [int(a) for a in anchors]
    head = max([a + 1 for a in anchors if a >= 0], default=0)
    tail = max([-a for a in anchors if a < 0] + [1])
    return head, tail


def minimum_budget(anchors):
    """The smallest memory budget for these anchors: the anchors and one reservoir slot."""
    head, tail = anchor_span(anchors)
    return head + tail + 1


class FrameStore:
    """A tensor of memory frames along axis ``dim``, written slot by slot.

    Unbounded (``capacity=None``): ``append`` grows it in chunks (at least
    ``_CHUNK`` frames, a quarter of the size when larger), so memorising a
    frame copies one frame, not the whole store (``torch.cat`` per insert is
    quadratic). Bounded (``capacity=N``): allocated once with N slots at the
    first write and never reallocated; ``put(slot, item)`` overwrites a slot
    in place.

    The buffer lives on ``device`` (default: the first item's device), in
    pinned memory with ``pin=True`` (``--offload_memory``). ``all``/``select``
    return views/copies on the store's device; moving them to the compute
    device is the caller's job (``MemoryBank``).

    Interface used by others: ``append(item) -> slot``, ``put(slot, item)``,
    ``all()`` (the first ``size`` slots, in slot order: time order only for an
    unbounded store), ``select(index)`` (index_select
    along ``dim``, index a tensor on the store's device), ``size``,
    ``buffer`` (may be ``None`` before the first write). A derived per-frame
    cache (e.g. a key norm) can be kept as a second FrameStore written with
    the same slots.
    """

    def __init__(self, dim, capacity=None, device=None, pin=False):
        self.dim = dim
        self.capacity = capacity
        self.device = None if device is None else torch.device(device)
        self.pin = pin
        self.buffer = None
        self.size = 0  # slots written so far (bounded: at most capacity)

    def _allocate(self, item, slots):
        shape = list(item.shape)
        shape[self.dim] = slots
        device = self.device if self.device is not None else item.device
        return torch.empty(shape, dtype=item.dtype, device=device,
                           pin_memory=self.pin and device.type == "cpu")

    def append(self, item):
        """Write ``item`` (its axis ``dim`` has length 1) after the last slot; returns the slot."""
        if self.capacity is not None:
            if self.size == self.capacity:
                raise IndexError(f"frame store full ({self.capacity} slots)")
            self.put(self.size, item)
            return self.size - 1
        if self.buffer is None or self.size == self.buffer.shape[self.dim]:
            grown = self._allocate(item, self.size + max(_CHUNK, self.size // 4))
            if self.buffer is not None:
                grown.narrow(self.dim, 0, self.size).copy_(self.buffer.narrow(self.dim, 0, self.size))
            self.buffer = grown
        self.buffer.narrow(self.dim, self.size, 1).copy_(item)
        self.size += 1
        return self.size - 1

    def put(self, slot, item):
        """Overwrite ``slot`` with ``item`` (bounded stores: any slot < capacity)."""
        limit = self.capacity if self.capacity is not None else self.size
        if not 0 <= slot < limit:
            raise IndexError(f"slot {slot} outside the store ({limit} slots)")
        if self.buffer is None:
            self.buffer = self._allocate(item, self.capacity)
        self.buffer.narrow(self.dim, slot, 1).copy_(item)
        self.size = max(self.size, slot + 1)

    def all(self):
        return self.buffer.narrow(self.dim, 0, self.size)

    def select(self, index):
        return self.buffer.index_select(self.dim, index)

    @property
    def nbytes(self):
        return 0 if self.buffer is None else self.buffer.nelement() * self.buffer.element_size()


class ReservoirIndex:
    """Which slot of a bounded store holds which memorised frame (no tensors).

    ``add(frame)`` records a newly memorised frame and returns the slot to
    write it to; ``entries()`` lists (frame, slot) of the stored frames in time
    order. Everything held is bounded by ``budget``. ``rng`` is a
    ``random.Random`` of its own (the sampler's stream is not touched).
    """

    def __init__(self, budget, head, tail, rng):
        if budget < head + tail + 1:
            raise ValueError(f"a memory budget of {budget} frames leaves no room for a reservoir next to the "
                             f"{head} first and {tail} newest memory frames the sampler's anchors need "
                             f"(at least {head + tail + 1})")
        self.budget, self.head, self.tail = budget, head, tail
        self.capacity = budget - head - tail  # reservoir slots
        self.rng = rng
        self.head_entries = []                # (frame, slot) of the first `head` frames
        self.tail_entries = collections.deque()  # (frame, slot) of the `tail` newest frames
        self.reservoir = []                   # (frame, slot); position j is reservoir slot j
        self.free = list(range(budget - 1, -1, -1))  # unused slots; pop() gives 0, 1, 2, ...
        self.memorised = 0                    # T: frames memorised so far
        self.candidates = 0                   # T': frames offered to the reservoir so far
        self._order = None

    def add(self, frame):
        self.memorised += 1
        self._order = None
        if len(self.head_entries) < self.head:
            entry = (frame, self.free.pop())
            self.head_entries.append(entry)
            return entry[1]
        if len(self.tail_entries) == self.tail:
            self._offer(self.tail_entries.popleft())
        entry = (frame, self.free.pop())
        self.tail_entries.append(entry)
        return entry[1]

    def _offer(self, entry):
        """Algorithm R: the i-th candidate replaces a uniformly chosen reservoir
        frame with probability R / i (R reservoir slots); the loser's slot is freed."""
        self.candidates += 1
        if len(self.reservoir) < self.capacity:
            self.reservoir.append(entry)
            return
        j = self.rng.randrange(self.candidates)
        if j < self.capacity:
            self.free.append(self.reservoir[j][1])
            self.reservoir[j] = entry
        else:
            self.free.append(entry[1])

    def entries(self):
        """(frame, slot) of every stored frame, oldest first."""
        if self._order is None:
            self._order = self.head_entries + sorted(self.reservoir) + list(self.tail_entries)
        return self._order


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
        self.index = ReservoirIndex(budget, *anchor_span(anchors), rng) if budget is not None else None
        self._frames = []               # unbounded: video frame index of every long-term memory frame
        self.compute_device = None if compute_device is None else torch.device(compute_device)
        self.global_key = self.global_value = None
        self.adjacent_key = self.adjacent_pos_value = None
        self.temporary = None           # (frame index, key, value, positional value)
        self.last_read = {}             # object id -> frames its last long-term readout read

    @property
    def frame_indices(self):
        """Video frame indices of the stored long-term memory frames, oldest first."""
        if self.index is None:
            return self._frames
        return [frame for frame, _ in self.index.entries()]

    @property
    def num_frames(self):
        """Frames in the long-term store (with a budget: at most the budget)."""
        return len(self._frames) if self.index is None else len(self.index.entries())

    @property
    def memorised(self):
        """Frames memorised since the group started (stored or evicted)."""
        return len(self._frames) if self.index is None else self.index.memorised

    def add(self, frame_index, key, value, pos_value):
        """Memorise a frame: key (1, C, h, w), value/pos_value (1, K, C, h, w).
        The first frame added is also the first-frame memory."""
        key, value = key.unsqueeze(2), value.unsqueeze(3)
        if self.global_key is None:
            self.global_key, self.global_value = key, value
            if self.compute_device is None:
                self.compute_device = key.device
        if self.index is None:
            self.keys.append(key)
            self.values.append(value)
            self._frames.append(frame_index)
        else:
            slot = self.index.add(frame_index)
            self.keys.put(slot, key)
            self.values.put(slot, value)
        self.adjacent_key, self.adjacent_pos_value = key, pos_value.unsqueeze(3)
        self.temporary = None

    def set_temporary(self, frame_index, key, value, pos_value):
        self.temporary = (frame_index, key.unsqueeze(2), value.unsqueeze(3), pos_value.unsqueeze(3))

    def reads(self, sampler, per_object):
        """The memory dicts ``IMSFR.segment`` consumes, as [(object slice, memory)].

        ``per_object``: each object draws its own frames (in object order) as the
        reference's per-object YouTube-VOS banks; otherwise one draw serves the
        whole group. Objects that read the same frames are read in one batch.
        Draws index the stored frames in time order (``frame_indices``).

        With a temporary frame (``include_last``) the long-term readout reads
        every memory frame plus the temporary one without sampling. The
        previous-frame readout then uses the temporary frame's own key and
        positional value (the project's choice: the reference crashes there).
        """
        if self.temporary is not None:
            t, key, value, pos_value = self.temporary
            stored_key, stored_value = self._gather(None, slice(None))
            memory = dict(local_key=torch.cat([stored_key, key], dim=2),
                          local_value=torch.cat([stored_value, value], dim=3),
                          global_key=self.global_key, global_value=self.global_value,
                          adjacent_key=key, adjacent_value=pos_value)
            self.last_read = {o: self.frame_indices + [t] for o in self.objects}
            return [(slice(None), memory)]
        draws = [sampler.select(self.num_frames) if sampler is not None else None
                 for _ in (self.objects if per_object else [None])]
        if all(chosen is None for chosen in draws):
            self.last_read = {o: list(self.frame_indices) for o in self.objects}
            return [(slice(None), self._memory(None, slice(None)))]
        frames = self.frame_indices
        reads = []
        for k, chosen in enumerate(draws):
            objects = slice(k, k + 1) if per_object else slice(None)
            for o in self.objects[objects]:
                self.last_read[o] = [frames[i] for i in chosen]
            reads.append((objects, self._memory(chosen, objects)))
        return reads

    def _to_compute(self, tensor):
        """Move a read from the store to the compute device (a no-op when they are the same)."""
        return tensor.to(self.compute_device)

    def _gather(self, chosen, objects):
        """Keys and values (objects only) of the stored frames at time-order
        positions ``chosen`` (None: all, oldest first), on the compute device."""
        if self.index is None:
            if chosen is None:
                key, value = self.keys.all(), self.values.all()
                return self._to_compute(key), self._to_compute(value[:, objects])
            slots = chosen
        else:
            order = [slot for _, slot in self.index.entries()]
            slots = order if chosen is None else [order[i] for i in chosen]
        index = torch.tensor(slots, dtype=torch.long, device=self.keys.buffer.device)
        key = self.keys.select(index)
        value = self.values.buffer[:, objects].index_select(3, index)
        return self._to_compute(key), self._to_compute(value)

    def _memory(self, chosen, objects):
        local_key, local_value = self._gather(chosen, objects)
        return dict(local_key=local_key, local_value=local_value,
                    global_key=self.global_key, global_value=self.global_value[:, objects],
                    adjacent_key=self.adjacent_key, adjacent_value=self.adjacent_pos_value[:, objects])

    def held_bytes(self):
        """Bytes of every tensor this bank holds (diagnostics)."""
        tensors = [self.global_key, self.global_value, self.adjacent_key, self.adjacent_pos_value]
        if self.temporary is not None:
            tensors += list(self.temporary[1:])
        return self.keys.nbytes + self.values.nbytes + sum(
            t.nelement() * t.element_size() for t in tensors if t is not None)
