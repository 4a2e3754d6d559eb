"""Training samples whose files cannot be read: skipped, counted, and reported
in the main process.

The loaders (dataset/vos_dataset.py, dataset/static_dataset.py,
util/palette.py) raise errors whose message starts with the file at fault.
Inside a DataLoader worker such an error would reach the main process as a
long traceback; :class:`SkippingDataset` catches it where it happens and
sends the message back as data instead:

* a sample whose files fail is replaced by the next index's sample (tried up
  to :data:`MAX_TRIES` indices, wrapping around); the replacement depends only
  on (seed, epoch, index) like every sample, so a resumed run reads the same
  batches;
* the messages travel with the batch (``batch["skipped"]``, put there by
  :func:`collate_skipping`); the training loop warns and counts them
  (:class:`SkipCounter`);
* when no readable sample is found in :data:`MAX_TRIES` indices, the batch
  becomes a :class:`DataFailure`, which stops the run.

A bug in the data code (any other exception) is not hidden: it is raised.
"""
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from dataset import DatasetError

MAX_TRIES = 10  # indices tried for one sample before the run stops
MAX_BAD_FILES = 20  # different unreadable files a run tolerates; one more stops it

# What the loaders raise for a file they cannot use (the message names the
# file): DatasetError and util.palette.AnnotationError (both ValueError), the
# ValueError / FileNotFoundError of util.fileio.load_frame, and the OSError
# of a file that cannot be opened or read (PIL's truncated or unidentified
# images are OSErrors too).
DATA_ERRORS = (DatasetError, ValueError, OSError)

SKIPPED_KEY = "skipped"
FAILED_KEY = "unreadable"


def one_line(error) -> str:
    """The error's message on one line (its type name when it has none)."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{error.filename}: {text}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def file_of(message: str) -> str:
    """The file a loader message names (the text before the first ': ')."""
    return message.split(": ", 1)[0]


class DataFailure:
    """A batch that could not be read: ``messages`` say which files failed."""

    def __init__(self, messages):
        self.messages = list(messages)

    def __str__(self):
        return f"{self.messages[0]} (no readable training sample in {len(self.messages)} consecutive tries)"


class SkippingDataset(Dataset):
    """``dataset`` whose unreadable samples are replaced by the following ones."""

    def __init__(self, dataset, max_tries=MAX_TRIES):
        self.dataset = dataset
        self.max_tries = max(1, min(int(max_tries), len(dataset)))

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        messages = []
        for step in range(self.max_tries):
            try:
                sample = self.dataset[(index + step) % len(self.dataset)]
            except DATA_ERRORS as error:
                messages.append(one_line(error))
                continue
            return {**sample, SKIPPED_KEY: messages}
        return {FAILED_KEY: messages}


def collate_skipping(samples):
    """``default_collate`` of the samples with their skip messages gathered in
    ``batch["skipped"]``; a :class:`DataFailure` if any sample found no readable data."""
    failed = [message for sample in samples for message in sample.get(FAILED_KEY, ())]
    if failed:
        return DataFailure(failed)
    skipped = [message for sample in samples for message in sample[SKIPPED_KEY]]
    batch = default_collate([{k: v for k, v in sample.items() if k != SKIPPED_KEY} for sample in samples])
    batch[SKIPPED_KEY] = skipped
    return batch


class TooManyBadFiles(Exception):
    """More different unreadable files than the run tolerates."""


class SkipCounter:
    """Skipped samples and the different files behind them; raises
    :class:`TooManyBadFiles` past ``max_bad_files`` different files."""

    def __init__(self, max_bad_files=MAX_BAD_FILES):
        self.max_bad_files = max_bad_files
        self.skipped = 0
        self.files = set()

    def add(self, message):
        """Count one skipped sample; returns the warning line for it."""
        self.skipped += 1
        self.files.add(file_of(message))
        if len(self.files) > self.max_bad_files:
            raise TooManyBadFiles(f"more than {self.max_bad_files} different training files are unreadable "
                                  f"({self.skipped} samples skipped); the last: {message}")
        return (f"warning: skipped a training sample: {message} ({self.skipped} skipped so far, "
                f"{len(self.files)} different file(s))")
