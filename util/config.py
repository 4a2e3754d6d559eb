"""Every default of the method in one place: training stages, inference
settings per benchmark, and the isogenous memory sampler.

The numbers follow the authors' reference implementation (see README,
"Defaults"). Scripts read these tables and expose each entry as a flag.
"""

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

# Inference defaults per benchmark, as the reference's three memory-bank files.
# Sampler: once the memory holds more than `sample_threshold` frames, the long-term
# readout reads int(sample_fraction * T) frames drawn from the T - 1 oldest plus the
# anchors (memory-frame indices; negative ones count from the end, -2: second-to-last).
# `procedure` is how the memory is filled (see inference_core/core.py):
#   davis:   all objects share one memory (one draw per frame); frame t is memorised
#            when t % mem_every == 0 (counted from the first annotated frame);
#   youtube: one memory per object (one draw per object per frame); every frame that
#            introduces objects is memorised for all objects and restarts the schedule
#            (t - last memorised >= mem_every); that frame's output is aggregated twice.
EVAL_DEFAULTS = {
    "davis2017": dict(top_k=4, mem_every=6, sample_threshold=10, sample_fraction=0.6,
                      anchors=(1, -5, -4, -3, -2), procedure="davis"),
    "davis2016": dict(top_k=12, mem_every=6, sample_threshold=8, sample_fraction=0.1,
                      anchors=(0, -2), procedure="davis"),
    "youtube": dict(top_k=20, mem_every=3, sample_threshold=10, sample_fraction=0.6,
                    anchors=(0, 1, -5, -4, -3, -2), procedure="youtube"),
    # Own videos (eval_generic.py): DAVIS 2017's memory settings; objects may appear
    # mid-video, so they are handled as the reference handles YouTube-VOS.
    # memory_budget (project's own, README "Long videos"): at most 50 long-term frames per
    # memory bank (anchors + a uniform reservoir sample), so an own video of any length fits
    # a consumer GPU at 480p: at 480x854 a stored frame is 3.3 MB of key + 3.3 MB per object
    # (float32), i.e. 50 frames of 2 objects about 0.5 GB. Videos with at most 50 memory frames
    # (300 frames at mem_every 6) are unaffected. The benchmark presets keep every frame
    # (no memory_budget entry = None), as the reference.
    "generic": dict(top_k=4, mem_every=6, sample_threshold=10, sample_fraction=0.6,
                    anchors=(1, -5, -4, -3, -2), procedure="youtube", memory_budget=50),
}
PROCEDURES = ("davis", "youtube")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
