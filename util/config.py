"""Every default of the method in one place: training stages, inference
settings per benchmark, and the isogenous memory sampler.

The numbers follow the authors' reference implementation (docs/defaults.md).
Scripts read these tables and expose each entry as a flag.
"""
import argparse
import dataclasses
from typing import Optional


# Training recipe per stage (Adam, weight decay 1e-7, MultiStepLR gamma 0.1).
STAGE_DEFAULTS = {
    0: dict(data="static", batch_size=8, iterations=300_000, lr=1e-5, steps=[150_000], single_object=True),
    1: dict(data="bl30k", batch_size=4, iterations=580_000, lr=1e-5, steps=[400_000], single_object=False),
    2: dict(data="main", batch_size=4, iterations=680_000, lr=1e-5, steps=[250_000], single_object=False),
    3: dict(data="main", batch_size=4, iterations=150_000, lr=1e-5, steps=[125_000], single_object=False),
}

TRAIN_COMMON = dict(
    weight_decay=1e-7,
    gamma=0.1,
    crop_size=384,
    num_frames=3,
    frame_sampling="reference",  # the reference's 3-frame law ("uniform": gaps 1..max_jump, no repeats)
    davis_repeat=5,            # DAVIS is repeated 5x next to YouTube-VOS in stages 2/3
    bootstrap_start=20_000,    # plain CE before this iteration
    bootstrap_end=70_000,      # p reaches its final value here
    bootstrap_top_p=0.15,
    log_text_interval=100,
    log_image_interval=800,
    save_network_interval=50_000,
    save_checkpoint_interval=50_000,
    num_workers=8,
)

# max_jump curriculum: (fraction of the run at which the value starts, max_jump)
MAX_JUMP_SCHEDULE = {
    "bl30k": [(0.0, 5), (0.1, 10), (0.2, 15), (0.3, 20), (0.4, 25), (0.8, 5)],
    "main": [(0.0, 5), (0.1, 10), (0.2, 15), (0.3, 20), (0.4, 25), (0.9, 5)],
}

# ----------------------------------------------------------------------------- inference
PROCEDURES = ("davis", "youtube")
# Inference precisions (util/device.py: inference_dtype); "amp" is the reference's --amp.
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
PRECISION_ALIASES = ("amp",)


def anchor_span(anchors):
    """(head, tail) of the memory frames the sampler's anchors always read: memory frames
    0 .. largest non-negative anchor (head of them) and the ``tail`` newest (at least the
    newest one, which the previous-frame readout reads)."""
    head = max([a + 1 for a in anchors if a >= 0], default=0)
    tail = max([-a for a in anchors if a < 0] + [1])
    return head, tail


def minimum_budget(anchors):
    """The smallest memory budget for these anchors: they are kept, plus one reservoir slot."""
    head, tail = anchor_span(anchors)
    return head + tail + 1


def check_sampler(threshold, fraction, anchors):
    """The isogenous sampler's settings, checked where they are held (``InferenceConfig``)."""
    if threshold < 0:
        raise ValueError("threshold must be >= 0")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must lie in [0, 1]")
    # Anchors must exist as soon as sampling starts (memory of threshold + 1 frames).
    for a in anchors:
        if not -(threshold + 1) <= a <= threshold:
            raise ValueError(f"anchor {a} does not exist in a memory of {threshold + 1} frames")


def _budget(text):
    """--memory_budget: a positive frame count, or 'none' (unbounded)."""
    if text.lower() == "none":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a frame count or 'none', got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a frame count or 'none', got {text!r}")
    return value


def _option(default, help, parse=None, aliases=(), switches=None, **argparse_options):
    """A config field with what its command-line flag needs (``add_config_arguments``);
    ``switches``: {flag: (value, help)}, flags that set the field to a value."""
    return dataclasses.field(default=default, metadata=dict(help=help, parse=parse, aliases=aliases,
                                                            switches=switches or {}, options=argparse_options))


@dataclasses.dataclass(frozen=True)
class InferenceConfig:
    """How the inference core fills and reads the memory. The field defaults are DAVIS
    2017's, as the reference's memory bank for it; ``PRESETS`` holds every benchmark's.

    Sampler: once a memory holds more than ``sample_threshold`` frames, the long-term
    readout reads int(sample_fraction * T) frames drawn from the T - 1 oldest plus the
    anchors (memory-frame indices; negative ones count from the end, -2: second-to-last).
    ``procedure`` is how the memory is filled (inference_core/procedures.py):
      davis:   all objects share one memory (one draw per frame); frame t is memorised
               when t % mem_every == 0 (counted from the first annotated frame);
      youtube: one memory per object (one draw per object per frame); every frame that
               introduces objects is memorised for all objects and restarts the schedule
               (t - last memorised >= mem_every); that frame's output is aggregated twice.
    """
    top_k: int = _option(4, "top-k of the long-term memory readout", int, aliases=("--top",))
    mem_every: int = _option(6, "memorise every N-th frame", int)
    include_last: bool = _option(False, "also read the last frame (temporary memory)")
    sample_threshold: int = _option(10, "sample the long-term memory when it holds more frames than this", int)
    sample_fraction: float = _option(0.6, "fraction of the memory frames read when sampling", float)
    anchors: tuple = _option((1, -5, -4, -3, -2), "memory frames always read when sampling, negative: from the end",
                             int, nargs="*")
    procedure: str = _option("davis", "how memory is filled: 'davis' (one draw per frame, t %% mem_every == 0) or "
                             "'youtube' (one draw per object, schedule restarts where objects appear, double "
                             "aggregation there), as the reference's scripts", str, choices=PROCEDURES)
    seed: int = _option(0, "seed of the memory sampler, restarted per video", int)
    # What the convolutions and matrix products compute in (util/device.py: inference_dtype); the
    # memory's affinities, the probabilities, the soft aggregation and the argmax stay float32.
    precision: str = _option("fp32", "fp32; bf16 or fp16 (autocast; any CPU, emulated where not native: slower); "
                                     "auto: fp16 on CUDA, bf16 on CPUs with native bfloat16 (AVX-512 BF16, AMX), "
                                     "else fp32 (docs/speed.md)", str, choices=PRECISIONS,
                             switches={"--amp": ("amp", "the reference's --amp: --precision fp16 on CUDA, bf16 "
                                                        "elsewhere")})
    # Project's own (docs/long-videos.md): at most this many long-term frames per memory bank,
    # anchors kept, the rest a reservoir sample (inference_core/memory_bank.py). None: every
    # memorised frame, as the reference.
    memory_budget: Optional[int] = _option(
        None, "keep at most N long-term memory frames per memory bank: the sampler's anchors plus a uniform "
              "reservoir sample of the older frames, so memory and time per frame stay flat on long videos; "
              "'none': every frame, as the reference", _budget)
    # CUDA: the long-term store in pinned CPU memory, only the frames read go to the GPU.
    offload_memory: bool = _option(False, "CUDA: keep the long-term memory in pinned CPU memory and move only the "
                                          "frames read to the GPU (no effect on CPU)")

    def __post_init__(self):
        object.__setattr__(self, "anchors", tuple(int(a) for a in self.anchors))
        if self.procedure not in PROCEDURES:
            raise ValueError(f"procedure must be one of {', '.join(PROCEDURES)}, got {self.procedure!r}")
        if self.mem_every < 1 or self.top_k < 1:
            raise ValueError(f"mem_every and top_k must be at least 1, got {self.mem_every} and {self.top_k}")
        check_sampler(self.sample_threshold, self.sample_fraction, self.anchors)
        if self.precision not in PRECISIONS + PRECISION_ALIASES:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.memory_budget is not None and self.memory_budget < minimum_budget(self.anchors):
            raise ValueError(f"memory_budget must be at least {minimum_budget(self.anchors)} for the anchors "
                             f"{self.anchors} (they are kept, plus one reservoir slot), got {self.memory_budget}")

    @property
    def amp(self):
        """Whether a reduced precision was asked for (it may resolve to float32 on the device: ``auto``)."""
        return self.precision != "fp32"

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


# The reference's three memory-bank files, and own videos. Own videos (eval_generic.py,
# the interactive demo): DAVIS 2017's memory settings; objects may appear mid-video, so they
# are handled as the reference handles YouTube-VOS. memory_budget 50 (project's own,
# docs/long-videos.md): an own video of any length fits a consumer GPU at 480p: at 480x854 a
# stored frame is 3.3 MB of key + 3.3 MB per object (float32), so 50 frames of 2 objects are
# about 0.5 GB; videos with at most 50 memory frames (300 frames at mem_every 6) are
# unaffected. The benchmark presets keep every frame, as the reference.
PRESETS = {
    "davis2017": InferenceConfig(),
    "davis2016": InferenceConfig(top_k=12, mem_every=6, sample_threshold=8, sample_fraction=0.1, anchors=(0, -2)),
    "youtube": InferenceConfig(top_k=20, mem_every=3, sample_threshold=10, sample_fraction=0.6,
                               anchors=(0, 1, -5, -4, -3, -2), procedure="youtube"),
    "generic": InferenceConfig(procedure="youtube", memory_budget=50, precision="auto"),
}
# Frames are processed with the shorter side scaled down to this (-1: original size).
PROCESSING_SIZE = {"davis2017": -1, "davis2016": -1, "youtube": 480, "generic": 480}


def add_config_arguments(parser, preset: InferenceConfig):
    """One flag per InferenceConfig field (--<field>, plus the reference's aliases), defaults from ``preset``."""
    group = parser.add_argument_group("memory and sampler (default: the benchmark's preset, util/config.py)")
    for field in dataclasses.fields(InferenceConfig):
        meta, default = field.metadata, getattr(preset, field.name)
        names = [f"--{field.name}", *meta["aliases"]]
        if meta["parse"] is None:  # a switch, off by default
            group.add_argument(*names, dest=field.name, action="store_true", default=default, help=meta["help"])
            continue
        if isinstance(default, tuple):
            default = list(default)
        group.add_argument(*names, dest=field.name, type=meta["parse"], default=default,
                           help=meta["help"] + " (default: %(default)s)", **meta["options"])
        for flag, (value, text) in meta["switches"].items():
            group.add_argument(flag, dest=field.name, action="store_const", const=value, help=text)
    return group


def config_from_args(args) -> InferenceConfig:
    """The InferenceConfig of parsed flags (ValueError for settings that do not fit together)."""
    return InferenceConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(InferenceConfig)})


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
