"""Safe, resumable dataset downloads shared by the download scripts.

An :class:`Archive` says where a file comes from (Google Drive id or a plain
URL), where it goes (``folder``/``dest`` relative to the data root) and what
it must contain. :func:`install_archive` downloads it (resuming a partial
``.part`` file), verifies it (not a web page; size and sha256 where known; a
readable zip/tar, a tar with its end-of-archive marker), checks every member
before writing anything (no absolute paths, no ``..``, no links of any kind:
none of the datasets needs one, and a link is what lets one archive prepare an
escape for the next), extracts into a temporary folder inside the target,
moves the result into place without following any link found there (and
checks the real path of every destination), and only then writes the
``.complete-<key>`` marker and removes the archive.

``IMSFR_DOWNLOAD_BASE_URL`` (or the scripts' hidden ``--base_url``) replaces
every source by ``<base>/<filename>`` over plain HTTP: used by the tests and
for local mirrors.
"""
import argparse
import dataclasses
import datetime
import glob
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import stat
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib

import progressbar

from util.fileio import atomic_write_text

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ROOT = os.path.dirname(REPO_ROOT)  # datasets live beside the repository, as in the reference
BASE_URL_ENV = "IMSFR_DOWNLOAD_BASE_URL"
CHUNK = 1 << 20
TIMEOUT_S = 60


class DownloadError(Exception):
    """Any failure the user must act on; the message says what and how."""


class VerificationError(DownloadError):
    """A file that is not what it should be (web page, size, checksum, broken archive)."""


class TruncatedArchiveError(VerificationError):
    """An archive that stops before its end (a download cut short)."""


class UnsafeArchiveError(DownloadError):
    """An archive member that would be written outside the target folder."""


class ConfirmationRequired(DownloadError):
    """Interactive confirmation is impossible (stdin is not a terminal) and --yes is missing."""


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


# ----------------------------------------------------------------------------- sources


def source_of(archive, base_url=None):
    """``("http", url)`` or ``("gdrive", id)`` for ``archive``; ``base_url`` overrides all."""
    base_url = base_url or os.environ.get(BASE_URL_ENV)
    if base_url:
        return "http", f"{base_url.rstrip('/')}/{urllib.parse.quote(archive.filename)}"
    if archive.url:
        return "http", archive.url
    if archive.gdrive_id:
        return "gdrive", archive.gdrive_id
    raise ValueError(f"archive {archive.key} has neither a URL nor a Google Drive id")


def gdrive_url(file_id):
    return f"https://drive.google.com/uc?id={file_id}"


def manual_hint(archive, path):
    """How to fetch ``archive`` by hand; appended to download errors."""
    sources = [gdrive_url(archive.gdrive_id)] if archive.gdrive_id else []
    if archive.url:
        sources.append(archive.url)
    where = " or ".join(sources) if sources else "its source"
    return (f"Manual alternative: download {where} in a browser, save it as {path} "
            "and run this command again (it will verify and extract it).")


# ----------------------------------------------------------------------------- transfer


def download_http(url, part_path, expected_size=None, timeout=TIMEOUT_S):
    """Complete ``part_path`` from ``url``, resuming with an HTTP Range request.

    The file is only appended to; the caller renames it once verified. A
    server that ignores the range (200) restarts the file from zero.
    """
    os.makedirs(os.path.dirname(os.path.abspath(part_path)), exist_ok=True)
    for _ in range(2):  # the second round only after a 416 on a stale partial file
        have = os.path.getsize(part_path) if os.path.exists(part_path) else 0
        if expected_size is not None and have > expected_size:
            have = _truncate(part_path)
        if expected_size is not None and have == expected_size:
            return
        headers = {"User-Agent": "imsfr-download", "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:
                if _content_range(error.headers.get("Content-Range", ""))[1] == have:
                    return
                _truncate(part_path)
                continue
            gone = " (the file is gone)" if error.code in (404, 410) else ""
            raise DownloadError(f"{url}: server answered {error.code} {error.reason}{gone}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise DownloadError(f"cannot reach {url} ({reason}); check the network connection") from None
        with response:
            _receive(response, url, part_path, have)
        return
    raise DownloadError(f"{url}: the server refuses to resume {part_path}")


def _truncate(path):
    with open(path, "wb"):
        pass
    return 0


def _content_range(header):
    """``(first byte, total)`` of a Content-Range header (``bytes a-b/n``, ``bytes */n``, ``bytes a-b/*``);
    each None where absent, both for a malformed header."""
    match = re.fullmatch(r"bytes (?:\*|(\d+)-\d+)/(\d+|\*)", (header or "").strip())
    if not match:
        return None, None
    return tuple(int(value) if value and value != "*" else None for value in match.groups())


def _receive(response, url, part_path, have):
    if have and response.status == 206:
        start, total = _content_range(response.headers.get("Content-Range"))
        if start != have:
            raise DownloadError(f"{url}: server sent a wrong byte range "
                                f"({response.headers.get('Content-Range')!r}) for a resume at byte {have}")
        mode = "ab"
    else:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        have, mode = 0, "wb"  # no range support: start over
    if have:
        print(f"Resuming {os.path.basename(part_path)} at byte {have}")
    bar = progressbar.DataTransferBar(max_value=total if total is not None else progressbar.UnknownLength,
                                      initial_value=have)
    received = have
    try:
        with open(part_path, mode) as f:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                received += len(block)
                bar.update(min(received, total) if total is not None else received)
    except (OSError, http.client.HTTPException) as error:
        raise DownloadError(f"{url}: transfer interrupted after {received} bytes ({error}); "
                            f"the partial file {part_path} is kept, run again to resume") from None
    finally:
        bar.finish(dirty=True)
    if total is not None and received != total:
        raise DownloadError(f"{url}: connection closed after {received} of {total} bytes; "
                            f"the partial file {part_path} is kept, run again to resume")


def download_gdrive(file_id, path):
    """Fetch a Google Drive file to ``path`` with gdown (its own ``.part`` file resumes)."""
    import gdown
    import requests

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        result = gdown.download(id=file_id, output=path, quiet=False, resume=True, retries=3, timeout=TIMEOUT_S)
    except Exception as error:  # gdown raises its own, requests' and HTTP errors alike
        cause = error.__cause__ or error
        if isinstance(cause, (requests.ConnectionError, requests.Timeout)):
            raise DownloadError(f"cannot reach Google Drive for {gdrive_url(file_id)}; check the network "
                                f"connection ({type(cause).__name__})") from None
        raise DownloadError(f"Google Drive download of {gdrive_url(file_id)} failed: {error}. Google Drive "
                            "refuses files fetched by many people recently ('quota exceeded', 'too many "
                            "users'); try again later") from None
    if result is None or not os.path.exists(path):
        raise DownloadError(f"Google Drive download of {gdrive_url(file_id)} produced no file")


# ----------------------------------------------------------------------------- verification


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 * CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def looks_like_html(path):
    """True for a web page (Google Drive quota / 'too many users' / login page) saved as the file."""
    with open(path, "rb") as f:
        head = f.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<meta"))


def verify_file(path, size=None, sha256=None):
    """Raise :class:`VerificationError` unless ``path`` is no web page and has the known size/sha256."""
    if looks_like_html(path):
        raise VerificationError(f"{path} is a web page, not the expected file (Google Drive answers "
                                "with a page when the download quota is exceeded or too many users "
                                "fetched the file)")
    actual = os.path.getsize(path)
    if size is not None and actual != size:
        raise VerificationError(f"{path} has {actual} bytes, expected {size}")
    if sha256 is not None:
        digest = sha256_of(path)
        if digest != sha256.lower():
            raise VerificationError(f"{path}: sha256 checksum mismatch (got {digest}, expected {sha256.lower()})")


# ----------------------------------------------------------------------------- safe extraction


def _member_path(name, archive_path):
    """Normalised relative path of an archive member; refuses absolute and ``..`` paths."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} has an absolute path; refusing to extract")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} contains '..'; refusing to extract")
    return "/".join(parts)


LINK_REFUSAL = "dataset archives hold only files and folders, so links are never extracted; refusing to extract"


def _check_plan(plan, archive_path):
    """Refuse paths written through a file and duplicates (links were refused when planning)."""
    not_folders = {path for kind, path, _ in plan if kind != "dir"}
    kinds = {}
    for kind, path, payload in plan:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in not_folders:
                raise UnsafeArchiveError(f"{archive_path}: member {path!r} would be written through the "
                                         f"file {prefix!r}; refusing to extract")
        if path in kinds and not (kind == "dir" and kinds[path] == "dir"):
            raise UnsafeArchiveError(f"{archive_path}: member {path!r} appears more than once; refusing to extract")
        kinds[path] = kind


def _zip_plan(archive, archive_path):
    plan = []
    for info in archive.infolist():
        path = _member_path(info.filename, archive_path)
        if not path:
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchiveError(f"{archive_path}: member {info.filename!r} is a symbolic link; {LINK_REFUSAL}")
        if info.is_dir():
            plan.append(("dir", path, None))
        else:
            plan.append(("file", path, info))
    return plan


def _tar_plan(archive, archive_path, target):
    compressed = not isinstance(archive.fileobj, io.BufferedReader)  # gzip/bz2/xz: no cheap size check
    file_size = os.path.getsize(archive_path)
    plan = []
    try:
        members = archive.getmembers()
    except tarfile.ReadError as error:
        if "unexpected end of data" not in str(error):
            raise
        raise TruncatedArchiveError(f"{archive_path} is truncated ({error})") from None
    for member in members:
        path = _member_path(member.name, archive_path)
        if member.issym() or member.islnk():
            kind = "symbolic" if member.issym() else "hard"
            raise UnsafeArchiveError(f"{archive_path}: member {member.name!r} is a {kind} link to "
                                     f"{member.linkname!r}; {LINK_REFUSAL}")
        if not (member.isdir() or member.isreg()):
            raise UnsafeArchiveError(f"{archive_path}: member {member.name!r} is a device, FIFO or other "
                                     "special file; refusing to extract")
        _standard_filter(member, target, archive_path)
        if not path:
            continue
        if member.isdir():
            plan.append(("dir", path, None))
        else:
            if not compressed and member.offset_data + member.size > file_size:
                raise TruncatedArchiveError(f"{archive_path} is truncated (member {member.name!r} ends past the "
                                           "end of the file)")
            plan.append(("file", path, member))
    _check_end_of_archive(archive, archive_path, plan)
    return plan


def _standard_filter(member, target, archive_path):
    """The standard library's ``data`` extraction filter as a second opinion on every tar member."""
    data_filter = getattr(tarfile, "data_filter", None)  # Python 3.11.4+
    if data_filter is None:
        return
    try:
        data_filter(member, target)
    except tarfile.FilterError as error:
        raise UnsafeArchiveError(f"{archive_path}: member {member.name!r} refused by the standard tar "
                                 f"filter ({error}); refusing to extract") from None


def _check_end_of_archive(archive, archive_path, plan):
    """A tar ends with two zero blocks; ``tarfile`` stops silently at a missing or broken
    header, so a file cut at a member boundary would otherwise look complete."""
    archive.fileobj.seek(archive.offset)
    marker = archive.fileobj.read(2 * tarfile.BLOCKSIZE)
    if marker != bytes(2 * tarfile.BLOCKSIZE):
        last = f"after member {plan[-1][1]!r} " if plan else ""
        raise TruncatedArchiveError(f"{archive_path} is truncated or damaged: no end-of-archive marker "
                                    f"{last}at byte {archive.offset} (an interrupted download?)")


def _open_archive(path):
    """``(kind, handle)`` for a zip or tar file; VerificationError for anything else."""
    try:
        if zipfile.is_zipfile(path):
            return "zip", zipfile.ZipFile(path)
        if tarfile.is_tarfile(path):
            return "tar", tarfile.open(path, "r:*")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise VerificationError(f"{path} is not a readable archive ({error})") from None
    raise VerificationError(f"{path} is neither a zip nor a tar archive (damaged or incomplete download)")


def safe_extract(archive_path, target):
    """Extract a zip/tar into ``target`` after checking every member; nothing lands outside it."""
    kind, handle = _open_archive(archive_path)
    with handle:
        try:
            plan = _zip_plan(handle, archive_path) if kind == "zip" else _tar_plan(handle, archive_path, target)
            _check_plan(plan, archive_path)
            os.makedirs(target, exist_ok=True)
            root = os.path.realpath(target)
            for member_kind, path, payload in plan:
                _write_member(handle, kind, member_kind, path, payload, root, archive_path)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
            raise VerificationError(f"{archive_path} is a damaged archive ({error})") from None


def _write_member(handle, kind, member_kind, path, payload, root, archive_path):
    destination = os.path.join(root, *path.split("/"))
    if member_kind == "dir":
        os.makedirs(destination, exist_ok=True)
        return
    parent = os.path.dirname(destination)
    os.makedirs(parent, exist_ok=True)
    real_parent = os.path.realpath(parent)
    if os.path.commonpath([real_parent, root]) != root:  # defence in depth; the plan already refused it
        raise UnsafeArchiveError(f"{archive_path}: member {path!r} resolves outside the target folder")
    source = handle.open(payload) if kind == "zip" else handle.extractfile(payload)
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with source, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def _inside(path, root):
    return os.path.commonpath([os.path.realpath(path), root]) == root


def _links_in_the_way(source, destination):
    """Existing links at the paths that moving ``source`` onto ``destination`` would write."""
    try:
        mode = os.lstat(destination).st_mode
    except FileNotFoundError:
        return []
    if stat.S_ISLNK(mode):
        return [destination]
    if stat.S_ISDIR(mode) and os.path.isdir(source) and not os.path.islink(source):
        return [link for name in sorted(os.listdir(source))
                for link in _links_in_the_way(os.path.join(source, name), os.path.join(destination, name))]
    return []


def _link_in_the_way(link, root):
    return UnsafeArchiveError(f"{link} is a symbolic link in the dataset folder {root}; archive content is "
                              "never written through links. Remove the link (or move what it points to in its "
                              "place) and run again")


def merge_move(source, destination, root):
    """Move ``source`` onto ``destination``, merging folders and replacing files, all inside
    the real folder ``root``: an existing link on the way is never followed or replaced."""
    links = _links_in_the_way(source, destination)
    if links:
        raise _link_in_the_way(links[0], root)
    if not _inside(os.path.dirname(destination), root):
        raise UnsafeArchiveError(f"{destination} lies outside the dataset folder {root}; refusing to move "
                                 "archive content there")
    mode = os.lstat(destination).st_mode if os.path.lexists(destination) else None
    if mode is not None and stat.S_ISDIR(mode) and os.path.isdir(source) and not os.path.islink(source):
        for name in os.listdir(source):
            merge_move(os.path.join(source, name), os.path.join(destination, name), root)
        os.rmdir(source)
        return
    if mode is not None and stat.S_ISDIR(mode):
        shutil.rmtree(destination)
    elif mode is not None:
        os.remove(destination)
    os.replace(source, destination)


# ----------------------------------------------------------------------------- installation


def marker_path(root, archive):
    return os.path.join(root, archive.folder, f".complete-{archive.key}")


def missing_expected(folder, patterns):
    return [pattern for pattern in patterns if not glob.glob(os.path.join(glob.escape(folder), pattern))]


def is_complete(root, archive):
    """Marker written and every expected path present."""
    dest = os.path.join(root, archive.dest_folder)
    return os.path.isfile(marker_path(root, archive)) and not missing_expected(dest, archive.expect)


def check_free_space(folder, needed, what):
    """Refuse to start when the file system of ``folder`` has less than ``needed`` bytes free."""
    probe = folder
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise DownloadError(f"not enough free space for {what} in {folder}: about {needed / 1e9:.1f} GB needed "
                            f"(archive and extracted files), {free / 1e9:.1f} GB free")


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


def _fetch(archive, path, kind, where):
    """Download ``archive`` to ``path`` from the ``source_of`` pair ``(kind, where)``."""
    if kind == "gdrive":
        download_gdrive(where, path)
    else:
        part = path + ".part"
        download_http(where, part, expected_size=archive.size)
        os.replace(part, path)


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
    temp = os.path.join(folder, f".extracting-{archive.key}")
    os.makedirs(folder, exist_ok=True)
    for own in (path, path + ".part", temp):  # e.g. planted by an archive of an older version of this tool
        if os.path.islink(own):
            raise UnsafeArchiveError(f"{own} is a symbolic link where this tool keeps its own file; remove it "
                                     "and run again")
    kind, where = source_of(archive, base_url)
    resumable = kind == "http"  # gdown names its partial files itself
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
                _fetch(archive, path, kind, where)
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
    content = _strip_wrapper(temp, archive.strip)
    missing = missing_expected(content, archive.expect)
    if missing:
        shutil.rmtree(temp, ignore_errors=True)
        raise VerificationError(f"{path} does not contain the expected {', '.join(missing)}; is it the right "
                                f"file? {manual_hint(archive, path)}")
    reserved = [name for name in os.listdir(content) if name.startswith((".complete-", ".extracting-"))]
    if reserved:
        shutil.rmtree(temp, ignore_errors=True)
        raise UnsafeArchiveError(f"{path}: member {reserved[0]!r} has the name of this tool's own bookkeeping; "
                                 "refusing to extract")
    os.makedirs(dest, exist_ok=True)
    real_dest = os.path.realpath(dest)  # the dataset folder itself may be a link the user made
    names = [name for name in os.listdir(content) if name != "__MACOSX"]
    links = [link for name in names for link in _links_in_the_way(os.path.join(content, name),
                                                                   os.path.join(dest, name))]
    if links:  # nothing is moved while a link is in the way; the kept archive is extracted again next time
        shutil.rmtree(temp, ignore_errors=True)
        raise _link_in_the_way(links[0], real_dest)
    for name in names:
        merge_move(os.path.join(content, name), os.path.join(dest, name), real_dest)
    shutil.rmtree(temp)
    atomic_write_text(marker_path(root, archive), json.dumps({
        "archive": archive.filename, "source": where, "bytes": os.path.getsize(path),
        "completed": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}, indent=1))
    if not keep_archive:
        os.remove(path)
    print(f"{archive.key}: done")
    return "installed"


def _strip_wrapper(folder, wrapper):
    """The archive's single top folder ``wrapper`` if that is all it holds, else ``folder``."""
    entries = [name for name in os.listdir(folder) if name != "__MACOSX"]
    if wrapper and entries == [wrapper] and os.path.isdir(os.path.join(folder, wrapper)):
        return os.path.join(folder, wrapper)
    return folder


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


# ----------------------------------------------------------------------------- command line


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
