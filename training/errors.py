"""The errors that stop a training run with a clear message; train.py prints
the message and exits with ``exit_code``."""


class TrainingError(RuntimeError):
    """A training run that cannot start or resume; the message says why."""

    exit_code = 1


class OutputFolderError(TrainingError):
    """--save_dir or --log_dir cannot be written (exit status 2, like a bad argument)."""

    exit_code = 2


class TrainingDataError(TrainingError):
    """The run stopped on training data it could not read, after saving a checkpoint."""
