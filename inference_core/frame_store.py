"""Where a memory bank keeps its long-term frames.

``FrameStore``: a tensor of frames along one axis, written slot by slot (grown in
chunks when unbounded, allocated once when bounded). ``EveryFrameIndex`` and
``ReservoirIndex`` say which slot holds which memorised frame: every frame in
order (the reference), or, with a memory budget, the anchors and an Algorithm-R
reservoir of the older frames (inference_core/memory_bank.py explains the law).
Nothing here grows with the video under a budget.
"""
import collections

import torch

_CHUNK = 16  # frames added to an unbounded store's capacity at a time (at least)


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


class EveryFrameIndex:
    """Every memorised frame in its own slot, in time order (no budget, as the reference)."""

    def __init__(self):
        self.frames = []  # video frame index of slot i

    @property
    def memorised(self):
        return len(self.frames)

    def add(self, frame):
        self.frames.append(frame)
        return len(self.frames) - 1

    def entries(self):
        """(frame, slot) of every stored frame, oldest first."""
        return [(frame, slot) for slot, frame in enumerate(self.frames)]


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
