"""The training run (:func:`run_training`): checks, set-up and resume, the
iteration loop, the final save.

The loop runs in one process or under DDP (one process per GPU, or gloo on
CPU). The checkpoint records the epoch, the batches consumed in it and the
RNG states, so a resumed run reads the batches the uninterrupted run would
have read and ends with the same weights.
"""
import os
import signal
import time
from dataclasses import dataclass

import torch

from dataset.curriculum import max_jump_at
from dataset.robust import SKIPPED_KEY, DataFailure, SkipCounter, TooManyBadFiles
from model.checkpoint import load_network_weights
from model.network import IMSFR
from training.args import REPO_ROOT
from training.checkpoints import check_writable_folder, checkpoint_paths, read_training_state, save_training_state
from training.data import build_training_data, epoch_loader, fetched_batches, to_device
from training.errors import TrainingDataError, TrainingError
from training.logger import TrainLogger, prediction_grid
from training.losses import LOSS_NAMES
from training.rng import restore_rng_states, seed_everything
from training.stop import StopRequest
from training.trainer import Trainer, weights_checksum
from util import distributed
from util.device import amp_available, pick_device


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
    """Train as ``args`` (from training.args.parse_train_args) say; returns a TrainingResult.

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
