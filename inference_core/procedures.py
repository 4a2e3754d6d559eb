"""How a video's memory is filled: the reference's two procedures as small policies.

A procedure says when a group of objects memorises a frame, whether the objects of
a group share one sampler draw per query, and how the known objects enter a frame
that introduces new ones. ``InferenceCore`` asks it; the state it keeps (the
YouTube-VOS schedule) restarts with every video.

* ``davis`` (DAVIS 2016/2017): a group memorises its first frame and every
  ``mem_every``-th frame after it (``t % mem_every == 0`` when it starts at frame 0,
  as the reference); one draw per group and query; known objects enter a frame that
  introduces others as their network probabilities. Objects given mid-video (which
  the reference's DAVIS code cannot take) start their own group.
* ``youtube`` (YouTube-VOS, own videos): a frame that introduces objects is memorised
  for every group and restarts the schedule; a later frame t is memorised when
  ``t - last memorised >= mem_every``; one draw per object (in id order; the
  reference keeps one bank per object); known objects enter as their aggregated
  probabilities (the output they would have had), so that frame is aggregated twice.
"""
from model.aggregate import soft_aggregate


class DavisProcedure:
    per_object_draws = False

    def __init__(self, mem_every):
        self.mem_every = mem_every

    def start_video(self):
        pass

    def groups_to_memorise(self, t, group_starts, introduces):
        """Indices of the groups that memorise frame t (given it has a next frame)."""
        return [g for g, start in enumerate(group_starts) if (t - start) % self.mem_every == 0]

    def memorised(self, t):
        """Frame t was memorised by some group."""

    def known_objects(self, object_prob):
        """How the known objects (K, H, W) enter a frame that introduces new ones."""
        return object_prob


class YouTubeProcedure(DavisProcedure):
    per_object_draws = True

    def start_video(self):
        self.last_memorised = None  # the schedule counts from here

    def groups_to_memorise(self, t, group_starts, introduces):
        due = introduces or (self.last_memorised is not None and t - self.last_memorised >= self.mem_every)
        return list(range(len(group_starts))) if due else []

    def memorised(self, t):
        self.last_memorised = t

    def known_objects(self, object_prob):
        return soft_aggregate(object_prob.unsqueeze(0))[0, 1:] if len(object_prob) else object_prob


PROCEDURES = {"davis": DavisProcedure, "youtube": YouTubeProcedure}


def make_procedure(config):
    """The procedure an ``InferenceConfig`` names."""
    return PROCEDURES[config.procedure](config.mem_every)
