"""The memories one group of objects reads at inference.

* long-term: every memorised frame (key + value), read through the isogenous
  sampler with a top-k softmax;
* first frame ("global"): the frame where the group's objects were given;
* previous ("adjacent"): the last memorised frame's key with its
  positional-encoded value;
* temporary (``include_last``): the last processed frame, kept for one step.

Keys: (1, C, T, h, w); values: (1, K, C, T, h, w) for the group's K objects.
"""
import torch


class MemoryBank:
    def __init__(self, sampler=None, top_k=None):
        self.sampler = sampler
        self.top_k = top_k
        self.keys = None
        self.values = None
        self.frame_indices = []         # video frame index of every long-term memory frame
        self.global_key = self.global_value = None
        self.adjacent_key = self.adjacent_pos_value = None
        self.temporary = None           # (frame index, key, value, positional value)
        self.last_read = []             # frames the last long-term readout read (diagnostics, tests)

    @property
    def num_frames(self):
        return len(self.frame_indices)

    def add(self, frame_index, key, value, pos_value):
        """Memorise a frame: key (1, C, h, w), value/pos_value (1, K, C, h, w).
        The first frame added is also the first-frame memory."""
        key, value = key.unsqueeze(2), value.unsqueeze(3)
        if self.keys is None:
            self.keys, self.values = key, value
            self.global_key, self.global_value = key, value
        else:
            self.keys = torch.cat([self.keys, key], dim=2)
            self.values = torch.cat([self.values, value], dim=3)
        self.frame_indices.append(frame_index)
        self.adjacent_key, self.adjacent_pos_value = key, pos_value.unsqueeze(3)
        self.temporary = None

    def set_temporary(self, frame_index, key, value, pos_value):
        self.temporary = (frame_index, key.unsqueeze(2), value.unsqueeze(3), pos_value.unsqueeze(3))

    def memory(self):
        """The memory dict consumed by ``IMSFR.segment``.

        With a temporary frame (``include_last``) the long-term readout reads
        every memory frame plus the temporary one without sampling, as the
        reference does. Unlike the reference, which paired the temporary key with
        the last memory frame's positional value, the previous-frame readout then
        uses the temporary frame's own key and positional value: key and value of
        one readout always come from the same frame.
        """
        if self.temporary is not None:
            _, key, value, pos_value = self.temporary
            local_key = torch.cat([self.keys, key], dim=2)
            local_value = torch.cat([self.values, value], dim=3)
            adjacent_key, adjacent_value = key, pos_value
            self.last_read = self.frame_indices + [self.temporary[0]]
        else:
            chosen = self.sampler.select(self.num_frames) if self.sampler is not None else None
            if chosen is None:
                local_key, local_value = self.keys, self.values
                self.last_read = list(self.frame_indices)
            else:
                self.last_read = [self.frame_indices[i] for i in chosen]
                index = torch.tensor(chosen, device=self.keys.device)
                local_key = self.keys.index_select(2, index)
                local_value = self.values.index_select(3, index)
            adjacent_key, adjacent_value = self.adjacent_key, self.adjacent_pos_value
        return dict(local_key=local_key, local_value=local_value,
                    global_key=self.global_key, global_value=self.global_value,
                    adjacent_key=adjacent_key, adjacent_value=adjacent_value)
