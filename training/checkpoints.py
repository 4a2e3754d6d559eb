"""Full training checkpoints: the network weights ``<id>_<iteration>.pth`` and
the checkpoint ``<id>_checkpoint.pth`` a run resumes from (--load_model), with
the optimizer, scheduler and scaler states, the position in the data (epoch,
batches consumed in it), the RNG states and the run's arguments.

Reading one checks its format tag, every field resuming reads
(:func:`check_training_checkpoint`) and the schedule arguments it was saved
with; the weights themselves are read by model/checkpoint.py.
"""
import os
import tempfile

import torch

from model.checkpoint import CheckpointError, read_checkpoint
from training.args import SCHEDULE_ARGS
from training.errors import OutputFolderError, TrainingError
from training.rng import rng_states
from util.fileio import atomic_torch_save

CHECKPOINT_FORMAT = "imsfr-train-1"

# What resuming (train.py --load_model) reads from a full training checkpoint; "scaler" and
# "rng.cuda" are optional (AMP and CUDA RNG states are restored only where they apply).
TRAINING_FIELDS = {"network": dict, "optimizer": dict, "scheduler": dict, "args": dict, "rng": dict,
                   "iteration": int, "epoch": int, "batches_done": int, "batches_per_epoch": int,
                   "optimizer.state": dict, "optimizer.param_groups": list,
                   "rng.python": (tuple, list), "rng.torch": torch.Tensor, "rng.numpy": dict,
                   "rng.numpy.keys": torch.Tensor, "rng.numpy.pos": int, "rng.numpy.has_gauss": int,
                   "rng.numpy.cached_gaussian": float}


def checkpoint_paths(args, iteration):
    return (os.path.join(args.save_dir, f"{args.id}_{iteration}.pth"),
            os.path.join(args.save_dir, f"{args.id}_checkpoint.pth"))


def save_training_state(trainer, args, iteration, epoch, batches_done, batches_per_epoch):
    """Network weights ``<id>_<iteration>.pth`` and the full ``<id>_checkpoint.pth``."""
    network_path, checkpoint_path = checkpoint_paths(args, iteration)
    state = trainer.state_dict()
    full = {**state, "format": CHECKPOINT_FORMAT, "iteration": iteration, "epoch": epoch,
            "batches_done": batches_done, "batches_per_epoch": batches_per_epoch,
            "rng": rng_states(), "args": vars(args)}
    for obj, path in ((state["network"], network_path), (full, checkpoint_path)):
        try:
            atomic_torch_save(obj, path)
        except OSError as error:
            raise TrainingError(f"{path}: cannot write the checkpoint ({error.strerror or error})") from None
    return network_path, checkpoint_path


def check_writable_folder(folder):
    """Create ``folder`` if needed, then write and remove a probe file in it, so an
    unusable --save_dir / --log_dir stops the run before it starts, not at the first save."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OutputFolderError(f"{folder}: exists and is not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=folder)
        try:
            os.write(fd, b"probe")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as error:
        raise OutputFolderError(f"{folder}: cannot write in this folder ({error.strerror or error})") from None


def check_training_checkpoint(state, path):
    """Raise CheckpointError naming ``path`` and the first field of a full training
    checkpoint that is missing or of the wrong type (see TRAINING_FIELDS)."""
    for field, kind in TRAINING_FIELDS.items():  # a field comes after its parent, checked to be a dict
        value = state
        for part in field.split("."):
            value = value.get(part)
            if value is None:
                break
        if value is None:
            hint = "" if field == "network" else " (--load_network can start a new run from its weights)"
            raise CheckpointError(f"{path}: training checkpoint has no '{field}' field; it cannot be resumed "
                                  f"with --load_model{hint}")
        if not isinstance(value, kind) or isinstance(value, bool):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise CheckpointError(f"{path}: training checkpoint field '{field}' is a {type(value).__name__}, "
                                  f"expected {names}; it cannot be resumed with --load_model")


def read_training_state(path, args):
    """A full checkpoint, checked against this run's schedule arguments."""
    state = read_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path}: not a full training checkpoint of this project "
                            f"(--load_model needs <id>_checkpoint.pth; use --load_network for weights)")
    check_training_checkpoint(state, path)  # names a missing field instead of a KeyError
    saved = state["args"]
    differences = [f"--{name} {saved.get(name)} (now {getattr(args, name)})" for name in SCHEDULE_ARGS
                   if saved.get(name) != getattr(args, name)]
    if differences:
        raise TrainingError(f"{path}: saved by a run with a different schedule; resume with the same "
                            f"settings or start a new run with --load_network. Saved: " + ", ".join(differences))
    return state
