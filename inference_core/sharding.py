"""Sharded evaluation: ``torchrun --nproc_per_node=N eval_davis.py ...`` (also
eval_davis_2016.py, eval_youtube.py, eval_generic.py) splits the videos over N
processes.

* Without a multi-process launch (``WORLD_SIZE`` unset or 1) nothing here
  does anything: :func:`join` returns :data:`SINGLE` and the scripts run as
  they always did.
* Under torchrun every process joins a process group (gloo on CPU, NCCL on
  CUDA) and runs on its own device: ``cuda:LOCAL_RANK`` with CUDA, else the
  CPU (``--device cpu`` keeps every process on the CPU).
* Rank 0 counts the frames of every video and deals the videos out, longest
  first, each to the process with the fewest frames so far (ties: the lower
  rank); every rank takes rank 0's plan. The plan depends on the frame counts
  only, so it is the same on every run.
* Each process writes its own videos. At the end the per-process summaries are
  gathered (which also waits for every process); rank 0 prints the merged
  summary and runs what comes once: the DAVIS evaluator, the YouTube-VOS zip.

Results do not depend on the number of processes: the memory sampler is
restarted per video with ``--seed``, and every video is run whole by one
process.
"""
import dataclasses

from util.distributed import cleanup, gather_objects, init_distributed, launch_environment

# The gather at the end waits for the slowest process, which may be hours behind on a big benchmark.
# (torchrun stops every process when one fails, so nothing waits for a dead one.)
WAIT_MINUTES = 7 * 24 * 60


@dataclasses.dataclass(frozen=True)
class Shard:
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


SINGLE = Shard()


def join(args):
    """This process's :class:`Shard`. Under a multi-process launch it joins the process group and
    sets ``args.device`` to this process's device; otherwise it changes nothing.
    Errors: util.distributed.DistributedSetupError (a RuntimeError)."""
    _, _, world_size = launch_environment()
    if world_size == 1:
        return SINGLE
    context = init_distributed(args.device, timeout_minutes=WAIT_MINUTES)
    args.device = str(context.device)
    return Shard(context.rank, context.world_size)


def leave(shard):
    if shard.distributed:
        cleanup()


def plan(sizes, world_size):
    """Deal items of the given sizes (frame counts) to ``world_size`` ranks: largest first (ties: the
    earlier item), each onto the rank with the smallest total so far (ties: the lower rank).
    Returns, per rank, the indices of its items in increasing order."""
    if world_size < 1:
        raise ValueError(f"need at least one rank, got {world_size}")
    loads = [0] * world_size
    shards = [[] for _ in range(world_size)]
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        rank = min(range(world_size), key=lambda r: (loads[r], r))
        shards[rank].append(i)
        loads[rank] += sizes[i]
    return [sorted(shard) for shard in shards]


def frame_count(reader, name):
    """Frames of a video for the plan; 0 for a video that cannot be described (it fails where it runs)."""
    try:
        return len(reader.video(name).frames)
    except Exception:  # noqa: BLE001 - the video reports its error when it is run
        return 0


def names_of(reader, shard):
    """The names of ``reader`` this process runs, in the reader's order (all of them in a single process).
    Under torchrun every process must call it: rank 0 plans, every rank takes rank 0's plan."""
    names = list(reader.names)
    if not shard.distributed:
        return names
    mine = None
    if shard.is_main:
        sizes = [frame_count(reader, name) for name in names]
        mine = [([names[i] for i in indices], sum(sizes[i] for i in indices))
                for indices in plan(sizes, shard.world_size)]
    mine = gather_objects(mine)[0]  # rank 0's plan on every rank
    names, frames = mine[shard.rank]
    print(f"process {shard.rank} of {shard.world_size}: {len(names)} videos, {frames} frames")
    return names


def merge(summaries, order):
    """One summary from the per-process ones (video_runner.RunSummary): lists joined and put in the
    reader's ``order``, counts and network seconds summed, peak GPU memory the largest."""
    rank_of = {name: i for i, name in enumerate(order)}
    merged = type(summaries[0])()
    for summary in summaries:
        merged.done += summary.done
        merged.skipped += summary.skipped
        merged.failures += summary.failures
        merged.frames += summary.frames
        merged.processed += summary.processed
        merged.seconds += summary.seconds
        if summary.peak_memory is not None:
            merged.peak_memory = max(merged.peak_memory or 0, summary.peak_memory)
    merged.done.sort(key=rank_of.get)
    merged.skipped.sort(key=rank_of.get)
    merged.failures.sort(key=lambda failure: rank_of.get(failure[0]))
    merged.processes = len(summaries)
    return merged


def gather_summary(summary, order, shard):
    """Every process's summary merged (waits for every process); the summary itself in a single process."""
    if not shard.distributed:
        return summary
    return merge(gather_objects(summary), order)
