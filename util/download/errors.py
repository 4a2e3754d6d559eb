"""The failures of the download tools, each one a thing the user must act on.

The scripts print any of them as one ``error:`` line (see
:func:`util.download.command_line.run_reporting_errors`), so a message names the
file at fault and says what to do.
"""


class DownloadError(Exception):
    """Any failure the user must act on; the message says what and how."""


class VerificationError(DownloadError):
    """A file that is not what it should be (web page, size, checksum, broken archive)."""


class TruncatedArchiveError(VerificationError):
    """An archive that stops before its end (a download cut short)."""


class UnsafeArchiveError(DownloadError):
    """An archive member, or a link on disk, that could make extraction write where it must not."""


class ConfirmationRequired(DownloadError):
    """Interactive confirmation is impossible (stdin is not a terminal) and --yes is missing."""
