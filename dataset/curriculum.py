"""The max_jump curriculum of stages 1-3: how far apart the sampled frames may be."""
from util.config import MAX_JUMP_SCHEDULE


def max_jump_at(iteration, total_iterations, schedule="main") -> int:
    """max_jump for the run fraction ``iteration / total_iterations``.

    ``schedule``: a name of util.config.MAX_JUMP_SCHEDULE ('bl30k', 'main') or a
    list of (start_fraction, max_jump) sorted by fraction, starting at 0.
    """
    if isinstance(schedule, str):
        if schedule not in MAX_JUMP_SCHEDULE:
            raise ValueError(f"unknown max_jump schedule '{schedule}' (known: {', '.join(MAX_JUMP_SCHEDULE)})")
        schedule = MAX_JUMP_SCHEDULE[schedule]
    if total_iterations <= 0:
        raise ValueError(f"total_iterations must be positive, got {total_iterations}")
    if not schedule or schedule[0][0] != 0:
        raise ValueError("a max_jump schedule must start at fraction 0")
    fraction = iteration / total_iterations
    value = schedule[0][1]
    for start, jump in schedule:
        if fraction >= start:
            value = jump
    return value
