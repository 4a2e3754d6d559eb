"""The memories a group of objects reads at inference.

* long-term: every memorised frame (key + value), read through the isogenous
  sampler with a top-k softmax;
* first frame ("global"): the frame where the group's objects were given;
* previous ("adjacent"): the last memorised frame's key with its
  positional-encoded value;
* temporary (``include_last``): the last processed frame, kept for one step.

Keys: (1, C, T, h, w); values: (1, K, C, T, h, w) for the group's K objects.
All objects of a group have the same memory frames. Whether they share one
sampler draw per query (the reference's DAVIS banks) or draw one each (its
YouTube-VOS banks, one per object) is the caller's choice (``reads``).
"""
import torch

_CHUNK = 16  # frames added to the store's capacity at a time


class FrameStore:
    """A tensor that grows along one axis in chunks, so that memorising a frame
    copies one frame, not the whole store (``torch.cat`` per insert is quadratic)."""

    def __init__(self, dim):
        self.dim = dim
        self.buffer = None
        self.size = 0

    def append(self, item):
        """Append ``item`` (the frame axis ``dim`` has length 1)."""
        if self.buffer is None or self.size == self.buffer.shape[self.dim]:
            shape = list(item.shape)
            shape[self.dim] = self.size + _CHUNK
            grown = item.new_empty(shape)
            if self.buffer is not None:
                grown.narrow(self.dim, 0, self.size).copy_(self.buffer.narrow(self.dim, 0, self.size))
            self.buffer = grown
        self.buffer.narrow(self.dim, self.size, 1).copy_(item)
        self.size += 1

    def all(self):
        return self.buffer.narrow(self.dim, 0, self.size)

    def select(self, index):
        return self.buffer.index_select(self.dim, index)


class MemoryBank:
    def __init__(self, objects):
        self.objects = list(objects)    # internal ids of the group's objects
        self.keys = FrameStore(dim=2)
        self.values = FrameStore(dim=3)
        self.frame_indices = []         # video frame index of every long-term memory frame
        self.global_key = self.global_value = None
        self.adjacent_key = self.adjacent_pos_value = None
        self.temporary = None           # (frame index, key, value, positional value)
        self.last_read = {}             # object id -> frames its last long-term readout read

    @property
    def num_frames(self):
        return len(self.frame_indices)

    def add(self, frame_index, key, value, pos_value):
        """Memorise a frame: key (1, C, h, w), value/pos_value (1, K, C, h, w).
        The first frame added is also the first-frame memory."""
        key, value = key.unsqueeze(2), value.unsqueeze(3)
        if self.global_key is None:
            self.global_key, self.global_value = key, value
        self.keys.append(key)
        self.values.append(value)
        self.frame_indices.append(frame_index)
        self.adjacent_key, self.adjacent_pos_value = key, pos_value.unsqueeze(3)
        self.temporary = None

    def set_temporary(self, frame_index, key, value, pos_value):
        self.temporary = (frame_index, key.unsqueeze(2), value.unsqueeze(3), pos_value.unsqueeze(3))

    def reads(self, sampler, per_object):
        """The memory dicts ``IMSFR.segment`` consumes, as [(object slice, memory)].

        ``per_object``: each object draws its own frames (in object order) as the
        reference's per-object YouTube-VOS banks; otherwise one draw serves the
        whole group. Objects that read the same frames are read in one batch.

        With a temporary frame (``include_last``) the long-term readout reads
        every memory frame plus the temporary one without sampling. The
        previous-frame readout then uses the temporary frame's own key and
        positional value (the project's choice: the reference crashes there).
        """
        if self.temporary is not None:
            t, key, value, pos_value = self.temporary
            memory = dict(local_key=torch.cat([self.keys.all(), key], dim=2),
                          local_value=torch.cat([self.values.all(), value], dim=3),
                          global_key=self.global_key, global_value=self.global_value,
                          adjacent_key=key, adjacent_value=pos_value)
            self.last_read = {o: self.frame_indices + [t] for o in self.objects}
            return [(slice(None), memory)]
        draws = [sampler.select(self.num_frames) if sampler is not None else None
                 for _ in (self.objects if per_object else [None])]
        if all(chosen is None for chosen in draws):
            self.last_read = {o: list(self.frame_indices) for o in self.objects}
            return [(slice(None), self._memory(None, slice(None)))]
        reads = []
        for k, chosen in enumerate(draws):
            objects = slice(k, k + 1) if per_object else slice(None)
            for o in self.objects[objects]:
                self.last_read[o] = [self.frame_indices[i] for i in chosen]
            reads.append((objects, self._memory(chosen, objects)))
        return reads

    def _memory(self, chosen, objects):
        if chosen is None:
            local_key, local_value = self.keys.all(), self.values.all()
        else:
            index = torch.tensor(chosen, device=self.global_key.device)
            local_key, local_value = self.keys.select(index), self.values.select(index)
        return dict(local_key=local_key, local_value=local_value[:, objects],
                    global_key=self.global_key, global_value=self.global_value[:, objects],
                    adjacent_key=self.adjacent_key, adjacent_value=self.adjacent_pos_value[:, objects])
