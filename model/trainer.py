"""Training: the network with its optimizer, LR schedule and AMP scaler
(:class:`Trainer`), full checkpoints, and the loop (:func:`run_training`).

The loop runs in one process or under DDP (one process per GPU, or gloo on
CPU). Every random choice of the data comes from (seed, epoch, index)
(dataset/seeding.py) and the checkpoint records the epoch, the batches
consumed in it and the RNG states, so a resumed run reads the batches the
uninterrupted run would have read and ends with the same weights.
"""
import hashlib
import os
import random
import signal
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from dataset.curriculum import max_jump_at
from dataset.robust import SKIPPED_KEY, DataFailure, SkipCounter, SkippingDataset, TooManyBadFiles, collate_skipping
from dataset.training_data import build_stage_dataset, check_stage_data, data_options, max_jump_schedule
from model.checkpoint import check_training_checkpoint, load_network_weights, read_checkpoint
from model.losses import IMSFRLoss
from model.network import IMSFR
from util import distributed
from util.config import TRAIN_COMMON
from util.device import amp_available, pick_device
from util.fileio import atomic_torch_save
from util.logger import TrainLogger, prediction_grid
from util.train_args import DEFAULT_ROOTS, REPO_ROOT, SCHEDULE_ARGS

LOSS_NAMES = ("total_loss", "ce_loss_1", "ce_loss_2", "iou_1", "iou_2")
CHECKPOINT_FORMAT = "imsfr-train-1"


class TrainingError(RuntimeError):
    """A training run that cannot start or resume; the message says why."""

    exit_code = 1


class OutputFolderError(TrainingError):
    """--save_dir or --log_dir cannot be written (exit status 2, like a bad argument)."""

    exit_code = 2


class TrainingDataError(TrainingError):
    """The run stopped on training data it could not read, after saving a checkpoint."""


# --------------------------------------------------------------------------- trainer
class Trainer:
    """The network (``network``; ``model`` is its DDP wrapper when distributed),
    Adam, MultiStepLR, the AMP scaler and the loss."""

    def __init__(self, network, device, lr, steps, amp=False, ddp=False,
                 bootstrap_start=TRAIN_COMMON["bootstrap_start"], bootstrap_end=TRAIN_COMMON["bootstrap_end"]):
        self.device = torch.device(device)
        self.amp = amp
        self.network = network.to(self.device).train()
        # Frozen parameters (mask2 in single-object mode) get no gradient: leave them
        # out of Adam, and DDP ignores them (no find_unused_parameters needed).
        trainable = [p for p in self.network.parameters() if p.requires_grad]
        if ddp:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.network, device_ids=ids)
        else:
            self.model = self.network
        self.optimizer = torch.optim.Adam(trainable, lr=lr, weight_decay=TRAIN_COMMON["weight_decay"])
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, steps, TRAIN_COMMON["gamma"])
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=amp)
        self.criterion = IMSFRLoss(bootstrap_start, bootstrap_end, TRAIN_COMMON["bootstrap_top_p"])

    def inputs(self, batch):
        """(frames, first-frame masks, selector) for the network from a data batch."""
        frames = batch["rgb"]
        if self.network.single_object:
            return frames, batch["gt"][:, 0], torch.ones(frames.shape[0], 1, device=frames.device)
        first_masks = torch.cat([batch["gt"][:, 0], batch["sec_gt"][:, 0]], dim=1)
        return frames, first_masks, batch["selector"].float()

    def step(self, batch, iteration):
        """One optimisation step on a batch already on the device; returns (losses, outputs)."""
        frames, first_masks, selector = self.inputs(batch)
        with torch.autocast(self.device.type, enabled=self.amp):
            outputs = self.model(frames, first_masks, selector)
        losses = self.criterion(outputs, batch["cls_gt"], selector, iteration)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(losses["total_loss"]).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return losses, outputs

    def lr(self):
        return self.scheduler.get_last_lr()[0]

    def network_state(self):
        """Weights in the reference format (no 'module.' prefix), on the CPU."""
        return {k: v.detach().cpu() for k, v in self.network.state_dict().items()}

    def state_dict(self):
        return {"network": self.network_state(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state):
        load_network_weights(self.network, state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.amp and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def weights_checksum(network) -> str:
    """SHA-256 of all parameters and buffers, to compare the ranks' weights."""
    digest = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- RNG states
def rng_states():
    numpy_state = np.random.get_state()
    states = {"python": random.getstate(), "torch": torch.get_rng_state(),
              "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                        "has_gauss": int(numpy_state[3]), "cached_gaussian": float(numpy_state[4])}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states):
    random.setstate(states["python"])
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if torch.cuda.is_available() and "cuda" in states and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------- data
@dataclass
class TrainingData:
    dataset: torch.utils.data.Dataset
    vos_datasets: list
    schedule: str  # name of the max_jump schedule (util.config.MAX_JUMP_SCHEDULE), None for static data
    sampler: DistributedSampler
    batches_per_epoch: int


def build_training_data(args, context):
    """The stage's dataset with its distributed sampler. Raises DatasetError (clear
    messages) for missing or unusable data roots."""
    roots = {name: getattr(args, name) for name in DEFAULT_ROOTS}
    youtube = not (args.data == "main" and args.main_data == "davis")
    check_stage_data(args.stage, roots, youtube=youtube, **data_options(args))
    dataset, vos_datasets = build_stage_dataset(args.stage, roots, crop_size=args.crop_size, seed=args.seed,
                                                youtube=youtube, **data_options(args))
    sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank,
                                 shuffle=True, seed=args.seed)
    batches = len(sampler) // args.batch_size
    if batches == 0:
        raise TrainingError(f"the stage {args.stage} data has {len(dataset)} samples: too few for "
                            f"{context.world_size} process(es) x batch size {args.batch_size}")
    return TrainingData(dataset, vos_datasets, max_jump_schedule(args.stage), sampler, batches)


def _ignore_sigint(_worker_id):
    # Ctrl-C reaches every process of the terminal's group: the loader workers
    # keep going so the main process can stop cleanly and save.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def epoch_loader(data, epoch, skip, args, device):
    """A DataLoader over this rank's batches of ``epoch``, minus the first ``skip``."""
    data.sampler.set_epoch(epoch)
    data.dataset.set_epoch(epoch)
    indices = list(data.sampler)
    batches = [indices[i * args.batch_size:(i + 1) * args.batch_size] for i in range(data.batches_per_epoch)]
    return DataLoader(SkippingDataset(data.dataset), batch_sampler=batches[skip:], num_workers=args.num_workers,
                      pin_memory=device.type == "cuda", worker_init_fn=_ignore_sigint, collate_fn=collate_skipping)


def fetched_batches(loader):
    """(batch, None) for each batch of ``loader``, then (None, failure) and the end
    if a batch cannot be read: a :class:`DataFailure` (no readable sample), or the
    exception raised while fetching (a worker that died, a bug in the data code)."""
    try:
        iterator = iter(loader)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            if isinstance(batch, DataFailure):
                yield None, batch
                return
            yield batch, None
    except Exception as error:
        yield None, error


def to_device(batch, device):
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


# --------------------------------------------------------------------------- stop requests
class StopRequest:
    """SIGINT / SIGTERM ask the loop to stop at the next iteration boundary (all
    ranks agree on it), save and exit; a second signal stops at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, _frame):
        self.signum = signum
        self.restore()

    def restore(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}


# --------------------------------------------------------------------------- checkpoints
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


# --------------------------------------------------------------------------- the loop
@dataclass
class TrainingResult:
    iteration: int
    network_path: str
    checkpoint_path: str
    stopped_by_signal: int = None  # signal number when interrupted


def prepare_network(args):
    """The network on the CPU, with --load_network weights if given (checked before
    any device memory is used); returns it with notes for the log."""
    pretrained = not (args.no_pretrained or args.load_network or args.load_model)
    network = IMSFR(single_object=args.single_object, pretrained=pretrained, key_backbone=args.key_backbone,
                    freeze_bn=not args.train_bn)
    notes = []
    if args.load_network:
        notes = [f"{args.load_network}: {note}" for note in load_network_weights(network, args.load_network)]
        notes.append(f"loaded network weights from {args.load_network}")
    return network, notes


def run_training(args, local_rank=None):
    """Train as ``args`` (from util.train_args.parse_train_args) say; returns a TrainingResult.

    Raises TrainingError, DatasetError, CheckpointError, DistributedSetupError
    or PretrainedWeightsUnavailable with a clear message for bad input; all
    inputs are checked before the process group is joined or the device used.
    """
    rank, _, world_size = distributed.launch_environment(local_rank)
    args.world_size = world_size
    try:
        device = pick_device(args.device)
    except RuntimeError as error:
        raise TrainingError(str(error)) from None
    if args.amp and not amp_available(device):
        raise TrainingError("--amp needs a CUDA device (mixed precision is CUDA-only here)")
    resume = read_training_state(args.load_model, args) if args.load_model else None

    seed_everything(args.seed)
    data = build_training_data(args, distributed.DistContext(rank, 0, world_size, device))
    if resume is not None and resume["batches_per_epoch"] != data.batches_per_epoch:
        raise TrainingError(f"{args.load_model}: saved with {resume['batches_per_epoch']} batches per epoch, "
                            f"the data now gives {data.batches_per_epoch}; the training data changed")
    network, notes = prepare_network(args)
    if rank == 0:
        for folder in (args.save_dir, args.log_dir, os.path.join(args.log_dir, args.id)):
            check_writable_folder(folder)

    context = distributed.init_distributed(args.device, local_rank)
    log = None
    try:
        args.amp = amp_available(context.device) if args.amp is None else args.amp
        trainer = Trainer(network, context.device, args.lr, args.steps, amp=args.amp, ddp=context.distributed,
                          bootstrap_start=args.bootstrap_start, bootstrap_end=args.bootstrap_end)
        position = (0, 0, 0)
        if resume is not None:
            trainer.load_state_dict(resume)
            position = resume["iteration"], resume["epoch"], resume["batches_done"]
            restore_rng_states(resume["rng"])
            resume = None  # free the checkpoint's memory for the run
        log = TrainLogger(args.log_dir, args.id, enabled=context.is_main,
                          prefix=f"[rank {context.rank}] " if context.distributed else "")
        for note in notes:
            log.info(note)
        return _train_loop(args, trainer, data, context, log, *position)
    finally:
        if log is not None:
            log.close()
        distributed.cleanup()


def _train_loop(args, trainer, data, context, log, iteration, epoch, batches_done):
    log.run_info(args, REPO_ROOT)
    where = f"{context.world_size} process(es) on {context.device.type}"
    log.info(f"stage {args.stage}: {len(data.dataset)} samples, {data.batches_per_epoch} batches of "
             f"{args.batch_size} per process per epoch, {where}, AMP {'on' if trainer.amp else 'off'}")
    if iteration:
        log.info(f"resuming at iteration {iteration} (epoch {epoch}, {batches_done} batches into it)")
    stop = StopRequest().install()
    try:
        iteration, epoch, batches_done, stopping, failure = _iterate(args, trainer, data, context, log, stop,
                                                                     iteration, epoch, batches_done)
        checksums = distributed.gather_objects(weights_checksum(trainer.network))
        log.info(f"weights checksum per rank: {' '.join(c[:16] for c in checksums)} "
                 f"({'identical' if len(set(checksums)) == 1 else 'DIFFERENT'})")
        network_path, checkpoint_path = checkpoint_paths(args, iteration)
        save_error = None
        if context.is_main:
            try:
                save_training_state(trainer, args, iteration, epoch, batches_done, data.batches_per_epoch)
                log.info(f"saved {network_path} and {checkpoint_path}")
            except TrainingError as error:
                save_error = error
        # The other ranks end only once rank 0 has saved: a launcher stops the
        # whole group when one process exits with an error.
        distributed.barrier()
        if save_error is not None:
            raise save_error
    finally:
        stop.restore()  # after the final save, so a signal cannot cut it short
    if failure is not None:
        _stop_on_data_failure(failure, iteration, checkpoint_path, log)
    if iteration >= args.iterations:
        log.info(f"finished {iteration} iterations")
        stopping = False
    elif stopping:
        log.info(f"stopped by {signal.Signals(stop.signum).name} after iteration {iteration}; "
                 f"resume with --load_model {checkpoint_path}")
    else:
        log.info(f"stopped after iteration {iteration} (--stop_after); resume with --load_model {checkpoint_path}")
    return TrainingResult(iteration, network_path, checkpoint_path, stop.signum if stopping else None)


class _FailureElsewhere(Exception):
    def __str__(self):
        return "another process could not read its training data (see its message)"


def _stop_on_data_failure(failure, iteration, checkpoint_path, log):
    """Raise TrainingDataError for a batch that could not be read (the checkpoint of
    ``iteration`` is saved); another exception (a bug, a killed worker) is re-raised as is."""
    where = f"stopped after iteration {iteration}; resume with --load_model {checkpoint_path}"
    if isinstance(failure, (DataFailure, TooManyBadFiles, _FailureElsewhere)):
        raise TrainingDataError(f"{failure}; {where}") from None
    log.info(f"fetching a batch failed: {where}")
    raise failure


def _iterate(args, trainer, data, context, log, stop, iteration, epoch, batches_done):
    """Train up to --stop_after / --iterations, an agreed stop request or a batch
    that cannot be read; returns the position reached (iteration, epoch,
    batches_done, stopped, failure). Unreadable samples are skipped and counted
    (dataset/robust.py); too many stop the run."""
    end = args.stop_after or args.iterations
    stopping, failure, skips = False, None, SkipCounter()
    totals, count, tick = torch.zeros(len(LOSS_NAMES), device=context.device), 0, time.time()
    log.start_progress(iteration, args.iterations)
    while iteration < end and not stopping:
        if batches_done >= data.batches_per_epoch:
            epoch, batches_done = epoch + 1, 0
        if data.schedule is not None:
            # The curriculum changes at epoch boundaries, from the fraction done when the epoch began.
            jump = max_jump_at(iteration - batches_done, args.iterations, data.schedule)
            for part in data.vos_datasets:
                part.set_max_jump(jump)
        for batch, failure in fetched_batches(epoch_loader(data, epoch, batches_done, args, context.device)):
            if failure is None:
                try:
                    for message in batch.pop(SKIPPED_KEY):
                        log.warning(skips.add(message))
                except TooManyBadFiles as error:
                    failure = error
            # Every rank must stop at the same iteration, or the others wait forever.
            stopping, failing = stop.signum is not None, failure is not None
            if context.distributed:
                stopping, failing = distributed.any_ranks([stopping, failing], context.device)
            if failing:
                failure = failure or _FailureElsewhere()
                stopping = True
                break
            if stopping:
                stop.signum = stop.signum or signal.SIGTERM  # a signal that reached another rank
                break
            batch = to_device(batch, context.device)
            losses, outputs = trainer.step(batch, iteration)
            iteration, batches_done = iteration + 1, batches_done + 1
            totals += torch.stack([losses[name].detach().float() for name in LOSS_NAMES])
            count += 1
            log.progress(iteration)
            if iteration % args.log_every == 0:
                values = distributed.all_reduce_sum(totals.clone()) / (count * context.world_size)
                scalars = dict(zip(LOSS_NAMES, values.tolist()))
                scalars.update(lr=trainer.lr(), p=losses["p"], sec_per_iter=(time.time() - tick) / count)
                log.scalars(scalars, iteration)
                totals.zero_()
                count, tick = 0, time.time()
            if iteration % args.image_every == 0 and context.is_main:
                log.image("train/prediction", prediction_grid(batch["rgb"], batch["cls_gt"], outputs["masks"]),
                          iteration)
            if iteration % args.save_every == 0 and iteration < end and context.is_main:
                save_training_state(trainer, args, iteration, epoch, batches_done, data.batches_per_epoch)
            if iteration >= end:
                break
    if skips.skipped:
        files = sorted(skips.files)
        log.warning(f"warning: {skips.skipped} unreadable sample(s) skipped in this run, from {len(files)} "
                    f"different file(s): {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}")
    return iteration, epoch, batches_done, stopping, failure
