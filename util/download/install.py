"""Installing one archive: what it is (:class:`Archive`) and the steps from its
source to a complete dataset folder.

:func:`install_archive` downloads the archive (resuming a partial ``.part``
file), verifies it, extracts it into a temporary folder inside the target,
moves the result into place, and only then writes the ``.complete-<key>``
marker and removes the archive: a run stopped anywhere is redone from the
step it did not finish.
"""
import dataclasses
import datetime
import glob
import json
import os
import shutil

from util.download.archives import content_folder, move_into_place, safe_extract
from util.download.command_line import check_free_space
from util.download.errors import DownloadError, TruncatedArchiveError, UnsafeArchiveError, VerificationError
from util.download.transfer import fetch, gdrive_url, source_of
from util.download.verify import verify_file
from util.fileio import atomic_write_text

MARKER_PREFIX = ".complete-"
EXTRACTING_PREFIX = ".extracting-"


@dataclasses.dataclass(frozen=True)
class Archive:
    """One downloadable archive and the layout it must produce.

    ``folder`` holds the archive while downloading, the temporary extraction
    folder and the completion marker; the (possibly ``strip``-ped) archive
    content is merged into ``dest`` (default: ``folder``). ``expect`` are glob
    patterns relative to ``dest`` that must match after extraction.
    """
    key: str
    filename: str
    folder: str
    dest: str | None = None
    gdrive_id: str | None = None
    url: str | None = None
    strip: str | None = None
    expect: tuple = ()
    size: int | None = None
    sha256: str | None = None
    approx_size: int | None = None  # for the free-space check when ``size`` is unknown

    @property
    def dest_folder(self):
        return self.dest or self.folder


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    archives: tuple


def manual_hint(archive, path):
    """How to fetch ``archive`` by hand; appended to download errors."""
    sources = [gdrive_url(archive.gdrive_id)] if archive.gdrive_id else []
    if archive.url:
        sources.append(archive.url)
    where = " or ".join(sources) if sources else "its source"
    return (f"Manual alternative: download {where} in a browser, save it as {path} "
            "and run this command again (it will verify and extract it).")


def marker_path(root, archive):
    return os.path.join(root, archive.folder, f"{MARKER_PREFIX}{archive.key}")


def missing_expected(folder, patterns):
    return [pattern for pattern in patterns if not glob.glob(os.path.join(glob.escape(folder), pattern))]


def is_complete(root, archive):
    """Marker written and every expected path present."""
    dest = os.path.join(root, archive.dest_folder)
    return os.path.isfile(marker_path(root, archive)) and not missing_expected(dest, archive.expect)


def archive_status(root, archive):
    """A short human-readable state for ``--list``."""
    if is_complete(root, archive):
        return "complete"
    path = os.path.join(root, archive.folder, archive.filename)
    if os.path.exists(path):
        return "downloaded, not extracted"
    partial = glob.glob(glob.escape(path) + "*.part")  # ours (<name>.part) and gdown's (<name><random>.part)
    if partial:
        size = sum(os.path.getsize(name) for name in partial)
        return f"partial download ({size / 1e6:.1f} MB)"
    return "missing"


def space_needed(root, archive):
    """Bytes still to download plus room for the extracted copy; None when the size is unknown."""
    size = archive.size or archive.approx_size
    if size is None:
        return None
    folder = os.path.join(root, archive.folder)
    path = os.path.join(folder, archive.filename)
    have = 0
    if os.path.exists(path):
        have = os.path.getsize(path)
    elif os.path.exists(path + ".part"):
        have = os.path.getsize(path + ".part")
    return max(size - have, 0) + size


def install_archive(root, archive, base_url=None, keep_archive=False, check_space=True):
    """Download, verify, extract and mark one archive; returns 'skipped' or 'installed'.

    A damaged archive that was already on disk is downloaded once more; a freshly
    downloaded one that fails verification is removed and reported.
    """
    if is_complete(root, archive):
        print(f"{archive.key}: already complete, skipping")
        return "skipped"
    folder = os.path.join(root, archive.folder)
    dest = os.path.join(root, archive.dest_folder)
    path = os.path.join(folder, archive.filename)
    temp = os.path.join(folder, f"{EXTRACTING_PREFIX}{archive.key}")
    os.makedirs(folder, exist_ok=True)
    for own in (path, path + ".part", temp):  # e.g. planted by an archive of an older version of this tool
        if os.path.islink(own):
            raise UnsafeArchiveError(f"{own} is a symbolic link where this tool keeps its own file; remove it "
                                     "and run again")
    source = source_of(archive, base_url)
    resumable = source[0] == "http"  # gdown names its partial files itself
    if resumable and archive.size and os.path.exists(path) and os.path.getsize(path) < archive.size:
        os.replace(path, path + ".part")  # a truncated copy: resume it rather than start over
    for attempt in (1, 2):
        fresh = not os.path.exists(path)
        needed = space_needed(root, archive) if fresh and check_space else None
        if needed is not None:
            check_free_space(folder, needed, archive.filename)
        try:
            if fresh:
                print(f"{archive.key}: downloading {archive.filename} into {folder}")
                fetch(source, path, expected_size=archive.size)
            print(f"{archive.key}: verifying {archive.filename}")
            verify_file(path, archive.size, archive.sha256)
            shutil.rmtree(temp, ignore_errors=True)
            print(f"{archive.key}: extracting into {dest}")
            safe_extract(path, temp)
            break
        except VerificationError as error:
            shutil.rmtree(temp, ignore_errors=True)
            if resumable and isinstance(error, TruncatedArchiveError):
                os.replace(path, path + ".part")  # resume it rather than start over (segments are ~115 GB)
                if fresh or attempt == 2:
                    raise DownloadError(f"{error}\nThe partial file is kept as {path}.part: run again to resume "
                                        f"the download, or delete it to start over. "
                                        f"{manual_hint(archive, path)}") from None
                print(f"{archive.key}: {error}; resuming the download")
                continue
            if os.path.exists(path):
                os.remove(path)
            if fresh or attempt == 2:
                raise VerificationError(f"{error}\nThe file was removed. {manual_hint(archive, path)}") from None
            print(f"{archive.key}: {error}; downloading it again")
        except UnsafeArchiveError:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        except DownloadError as error:
            raise type(error)(f"{error}\n{manual_hint(archive, path)}") from None
    try:  # the kept archive is extracted again next time
        _move_content_into_place(archive, path, temp, dest)
    except DownloadError:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    shutil.rmtree(temp)
    atomic_write_text(marker_path(root, archive), json.dumps({
        "archive": archive.filename, "source": source[1], "bytes": os.path.getsize(path),
        "completed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}, indent=1))
    if not keep_archive:
        os.remove(path)
    print(f"{archive.key}: done")
    return "installed"


def _move_content_into_place(archive, path, temp, dest):
    """Check what ``path`` unpacked into ``temp`` and merge it into ``dest``."""
    content = content_folder(temp, archive.strip)
    missing = missing_expected(content, archive.expect)
    if missing:
        raise VerificationError(f"{path} does not contain the expected {', '.join(missing)}; is it the right "
                                f"file? {manual_hint(archive, path)}")
    reserved = [name for name in os.listdir(content) if name.startswith((MARKER_PREFIX, EXTRACTING_PREFIX))]
    if reserved:
        raise UnsafeArchiveError(f"{path}: member {reserved[0]!r} has the name of this tool's own bookkeeping; "
                                 "refusing to extract")
    move_into_place(content, dest)
