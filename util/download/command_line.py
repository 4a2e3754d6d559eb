"""What the download scripts share on the command line: the common options,
confirmation (never hanging when stdin is not a terminal), the free-space check
before a download starts, and turning the expected failures into one line."""
import argparse
import os
import shutil
import sys

from util.download.errors import ConfirmationRequired, DownloadError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ROOT = os.path.dirname(REPO_ROOT)  # datasets live beside the repository, as in the reference


def add_common_arguments(parser):
    parser.add_argument("--root", default=DEFAULT_ROOT,
                        help="data root folder (default: the repository's parent folder, %(default)s)")
    parser.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--keep_archives", action="store_true", help="keep the archives after extraction")
    parser.add_argument("--list", action="store_true", help="show what can be fetched and its status, then exit")
    parser.add_argument("--base_url", default=None, help=argparse.SUPPRESS)  # tests and local mirrors


def confirm(question, assume_yes):
    """True if the user agrees; refuses instead of hanging when stdin is not a terminal."""
    if assume_yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        raise ConfirmationRequired("standard input is not a terminal, so nothing can be confirmed "
                                   "interactively; pass --yes to proceed without a question")
    try:
        reply = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return reply.strip().lower() in ("y", "yes")


def check_free_space(folder, needed, what):
    """Refuse to start when the file system of ``folder`` has less than ``needed`` bytes free."""
    probe = folder
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise DownloadError(f"not enough free space for {what} in {folder}: about {needed / 1e9:.1f} GB needed "
                            f"(archive and extracted files), {free / 1e9:.1f} GB free")


def run_reporting_errors(action):
    """Run a download command's ``action`` (returning its exit code) and turn the
    expected failures into a one-line message: 1 for errors, 130 for Ctrl-C."""
    try:
        return action()
    except (DownloadError, OSError) as error:  # OSError: disk full, permissions
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nInterrupted; run the same command again to resume.", file=sys.stderr)
        return 130
