"""Driving the inference core over a video in tests: its one frame loop, ``InferenceCore.run``."""


def run_core(core, frames, given, outputs=None):
    """given: {t: (mask, ids)}; outputs: frames to produce (default all), the others are
    skipped when nothing needs them. Returns {t: probabilities} of the processed frames."""
    return {result.index: result.prob for result in core.run(frames, given, outputs)}
