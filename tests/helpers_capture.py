"""progressbar2 writes to the streams of its import time (which, in a pytest run,
belong to an earlier test); point it at the current, captured ones."""
import contextlib
import sys

import progressbar


@contextlib.contextmanager
def progress_to_current_streams():
    streams = progressbar.utils.streams
    saved = streams.original_stdout, streams.original_stderr
    streams.original_stdout, streams.original_stderr = sys.stdout, sys.stderr
    try:
        yield
    finally:
        streams.original_stdout, streams.original_stderr = saved
