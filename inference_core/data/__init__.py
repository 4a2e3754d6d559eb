"""The videos inference runs on: the evaluation sets' readers (``readers.py``), where a video's frames
come from (``frame_sources.py``: a folder of images or a video file) and its objects (``objects.py``:
the annotations read and checked, the map between their ids and the core's)."""


class SequenceError(ValueError):
    """A sequence (video) that cannot be read or segmented; the message names the file and the problem."""
