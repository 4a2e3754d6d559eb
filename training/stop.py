"""Stop requests: SIGINT / SIGTERM ask the training loop to stop cleanly."""
import signal
import threading


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
