"""Training logs: TensorBoard scalars/images/text, text lines, a progress bar.

Only rank 0 logs; on other ranks every method is a no-op, so the training
loop calls them unconditionally. TensorBoard event files are appended as
training goes (they cannot be written atomically, unlike every other output).
"""
import os
import sys

import numpy as np
import progressbar
import torch

from util.config import IMAGENET_MEAN, IMAGENET_STD
from util.palette import DAVIS_PALETTE


def git_commit(path) -> str:
    """The commit of the repository containing ``path`` ('+ local changes' if dirty)."""
    try:
        import git

        repo = git.Repo(path, search_parent_directories=True)
        commit = repo.head.commit.hexsha
        return commit + (" + local changes" if repo.is_dirty() else "")
    except Exception as error:  # not a repository, no git executable, no commit yet
        return f"unknown ({type(error).__name__})"


def hparams_markdown(args) -> str:
    rows = [f"| {key} | {value} |" for key, value in sorted(vars(args).items())]
    return "\n".join(["| argument | value |", "|---|---|", *rows])


def denormalise(frames: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised frames (..., 3, H, W) back to [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=frames.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=frames.dtype).view(3, 1, 1)
    return (frames * std + mean).clamp(0, 1)


def colour_labels(labels: torch.Tensor) -> torch.Tensor:
    """Label maps (..., H, W) ints -> DAVIS palette colours (..., 3, H, W) in [0, 1]."""
    palette = torch.from_numpy(np.frombuffer(DAVIS_PALETTE, dtype=np.uint8).reshape(256, 3).copy())
    return (palette[labels.long().clamp(0, 255)].movedim(-1, -3).float() / 255)


def prediction_grid(frames, cls_gt, masks, max_samples=2) -> torch.Tensor:
    """One row per sample: the 3 frames | the 3 ground truths | the 2 predictions.

    frames (B, 3, 3, H, W) normalised, cls_gt (B, 3, H, W) labels, masks a list of
    the 2 predicted object probabilities (B, K, H, W). Returns (3, rows*H, 8*W) in [0, 1].
    """
    rows = []
    for b in range(min(max_samples, frames.shape[0])):
        images = list(denormalise(frames[b].float().cpu()))
        images += list(colour_labels(cls_gt[b].cpu()))
        for prob in masks:
            prob = prob[b].detach().float().cpu()
            background = (1 - prob.sum(dim=0, keepdim=True)).clamp(min=0)
            images.append(colour_labels(torch.cat([background, prob]).argmax(dim=0)))
        rows.append(torch.cat(images, dim=2))
    return torch.cat(rows, dim=1)


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at write time: progressbar2 otherwise swaps
    ``sys.stderr`` for the stream it saw at import, which is stale under output
    capture (tests, notebooks)."""

    def write(self, text):
        return sys.stderr.write(text)

    def flush(self):
        sys.stderr.flush()

    def isatty(self):
        return sys.stderr.isatty()


class TrainLogger:
    """Rank-0 logging to TensorBoard (``<log_dir>/<run_id>``) and stdout;
    warnings from every rank to stderr, after ``prefix`` (the rank under DDP)."""

    def __init__(self, log_dir, run_id, enabled=True, prefix=""):
        self.enabled = enabled
        self.prefix = prefix
        self.writer = None
        self.bar = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.path.join(log_dir, run_id))

    def info(self, message):
        if self.enabled:
            self._print(message, sys.stdout)

    def warning(self, message):
        """A line on stderr, from any rank."""
        self._print(self.prefix + message, sys.stderr)

    def _print(self, message, stream):
        redraw = self.bar is not None and sys.stderr.isatty()
        if redraw:
            sys.stderr.write("\r\033[K")  # erase the bar's line; redrawn below the message
        print(message, file=stream, flush=True)
        if redraw:
            self.bar.update(force=True)

    def run_info(self, args, repo_path):
        if not self.enabled:
            return
        commit = git_commit(repo_path)
        self.writer.add_text("hyperparameters", hparams_markdown(args), 0)
        self.writer.add_text("git_commit", commit, 0)
        self.info(f"git commit: {commit}")

    def scalars(self, values: dict, iteration: int, prefix="train"):
        if not self.enabled:
            return
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, iteration)
        self.writer.flush()
        text = " ".join(f"{name}={value:.4g}" for name, value in values.items())
        self.info(f"[{prefix} it {iteration}] {text}")

    def image(self, tag, image: torch.Tensor, iteration: int):
        if self.enabled:
            self.writer.add_image(tag, image, iteration)

    def start_progress(self, start, total):
        if self.enabled:
            self.bar = progressbar.ProgressBar(min_value=0, max_value=total, initial_value=start,
                                               fd=_CurrentStderr())
            self.bar.start()

    def progress(self, iteration):
        if self.bar is not None:
            self.bar.update(iteration)

    def close(self):
        if self.bar is not None:
            self.bar.finish(dirty=True)
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
