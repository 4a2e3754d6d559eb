"""What a propagation of a session runs: the frames in run order, the outputs, and the given masks.

Forward from frame t: from the first annotated frame to the end, every annotation given, the frames
t.. written; backward: the same on the reversed frames, from the last annotated frame down to 0,
the frames ..t written. An annotation introduces the objects that have no earlier annotation in the
run's direction (as the YouTube-VOS procedure introduces objects) and corrects the others (their mask
replaces the prediction there and is memorised: ``InferenceCore.step(corrected_objects=...)``).
"""
import numpy as np

from inference_core.data.objects import ObjectIds, VideoObjects, given_labels
from inference_core.video_runner import mask_tensor
from interactive.store import SessionError


def plan(annotations, t, backward, length):
    """(video frames in run order, run positions to output) of a run from frame t; ``annotations``:
    t -> (labels, objects, revision)."""
    starts = [f for f, (labels, objects, _) in annotations.items() if np.isin(labels, list(objects)).any()]
    if not starts:
        raise SessionError("no mask to propagate: draw an object first (brush, click or box) on some frame")
    if backward:
        order = list(range(max(starts), -1, -1))
        outputs = {i for i, f in enumerate(order) if f <= t}
    else:
        order = list(range(min(starts), length))
        outputs = {i for i, f in enumerate(order) if f >= t}
    return order, outputs


def given_masks(annotations, order, video_size, size, palette, device):
    """The run's objects (``VideoObjects``, keyed by run position, for ``output_labels``) and the core's
    ``given`` {position: (internal-id mask at ``size``, new ids, corrected ids)}."""
    introduced, given, ids, new, corrected = ObjectIds(), {}, {}, {}, {}
    for i, f in enumerate(order):
        if f not in annotations:
            continue
        labels, objects, _ = annotations[f]
        corrected[i] = [k for k in sorted(objects) if k in introduced]
        new[i] = introduced.introduce(i, labels, objects)
        ids[i] = new[i] + corrected[i]
        if ids[i]:
            given[i] = given_labels(labels, ids[i])
    to_original, to_internal = introduced.arrays()
    objects = VideoObjects(given, {i: ids[i] for i in given}, to_original, to_internal, video_size, palette)
    core_given = {i: (mask_tensor(to_internal[given[i]], size, device),
                      [int(to_internal[k]) for k in new[i]], [int(to_internal[k]) for k in corrected[i]])
                  for i in given}
    return objects, core_given
