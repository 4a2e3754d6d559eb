"""Driving the inference core over a video in tests, as the video runner does."""


def run_core(core, frames, given, outputs=None):
    """given: {t: (mask, ids)}; outputs: frames to produce (default all), the others are
    skipped when nothing needs them. Returns {t: probabilities} of the processed frames."""
    core.start_video()
    probs = {}
    for t, frame in enumerate(frames):
        mask, ids = given.get(t, (None, ()))
        last = t + 1 == len(frames)
        if not core.will_process(output=outputs is None or t in outputs, new_objects=bool(ids), last=last):
            core.skip()
            continue
        probs[t] = core.step(frame, None if last else frames[t + 1], mask=mask, new_objects=ids)
    return probs
