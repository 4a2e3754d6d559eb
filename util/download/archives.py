"""Safe extraction of zip and tar archives, and moving the result into place.

Every member is checked before anything is written: no absolute path, no
``..``, no link of any kind (none of the datasets needs one, and a link is what
lets one archive prepare an escape for the next), no path written through a
file or twice. Tar members also pass the standard library's ``data`` extraction
filter, which refuses devices, FIFOs and other special files and any path whose
real location leaves the target; zip has no such filter (and no special files:
each member is written as a plain file). The content is written into a fresh
folder and then merged into the dataset folder without following any link
found there, checking the real path of every destination.
"""
import os
import re
import shutil
import stat
import tarfile

from util.download.errors import UnsafeArchiveError, VerificationError
from util.download.transfer import CHUNK
from util.download.verify import ARCHIVE_READ_ERRORS, check_tar_complete, open_archive, tar_members

MACOS_METADATA = "__MACOSX"  # resource forks added by macOS archivers; never installed
LINK_REFUSAL = "dataset archives hold only files and folders, so links are never extracted; refusing to extract"


def safe_extract(archive_path, target):
    """Extract a zip/tar into ``target`` after checking every member; nothing lands outside it."""
    kind, handle = open_archive(archive_path)
    with handle:
        try:
            plan = _zip_plan(handle, archive_path) if kind == "zip" else _tar_plan(handle, archive_path, target)
            _check_plan(plan, archive_path)
            os.makedirs(target, exist_ok=True)
            root = os.path.realpath(target)
            for member_kind, path, payload in plan:
                _write_member(handle, kind, member_kind, path, payload, root, archive_path)
        except ARCHIVE_READ_ERRORS as error:
            raise VerificationError(f"{archive_path} is a damaged archive ({error})") from None


def _member_path(name, archive_path):
    """Normalised relative path of an archive member; refuses absolute and ``..`` paths.

    Stricter than tar's ``data`` filter, which strips a leading ``/`` and allows a
    ``..`` that stays inside the target."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} has an absolute path; refusing to extract")
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive_path}: member {name!r} contains '..'; refusing to extract")
    return "/".join(parts)


def _zip_plan(archive, archive_path):
    plan = []
    for info in archive.infolist():
        path = _member_path(info.filename, archive_path)
        if not path:
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeArchiveError(f"{archive_path}: member {info.filename!r} is a symbolic link; {LINK_REFUSAL}")
        plan.append(("dir", path, None) if info.is_dir() else ("file", path, info))
    return plan


def _tar_plan(archive, archive_path, target):
    members = tar_members(archive, archive_path)
    plan = []
    for member in members:
        path = _member_path(member.name, archive_path)
        if member.issym() or member.islnk():  # the data filter would let links inside the target through
            kind = "symbolic" if member.issym() else "hard"
            raise UnsafeArchiveError(f"{archive_path}: member {member.name!r} is a {kind} link to "
                                     f"{member.linkname!r}; {LINK_REFUSAL}")
        _data_filter(member, target, archive_path)
        if path:
            plan.append(("dir", path, None) if member.isdir() else ("file", path, member))
    check_tar_complete(archive, archive_path, members)
    return plan


def _data_filter(member, target, archive_path):
    """Pass ``member`` through ``tarfile.data_filter``: no device, FIFO or other special file,
    nothing whose real path leaves ``target``."""
    try:
        tarfile.data_filter(member, target)
    except tarfile.SpecialFileError:
        raise UnsafeArchiveError(f"{archive_path}: member {member.name!r} is a device, FIFO or other "
                                 "special file; refusing to extract") from None
    except tarfile.FilterError as error:
        raise UnsafeArchiveError(f"{archive_path}: member {member.name!r} refused by the standard tar "
                                 f"filter ({error}); refusing to extract") from None


def _check_plan(plan, archive_path):
    """Refuse paths written through a file and duplicates (links were refused when planning)."""
    not_folders = {path for kind, path, _ in plan if kind != "dir"}
    kinds = {}
    for kind, path, _ in plan:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in not_folders:
                raise UnsafeArchiveError(f"{archive_path}: member {path!r} would be written through the "
                                         f"file {prefix!r}; refusing to extract")
        if path in kinds and not (kind == "dir" and kinds[path] == "dir"):
            raise UnsafeArchiveError(f"{archive_path}: member {path!r} appears more than once; refusing to extract")
        kinds[path] = kind


def _write_member(handle, kind, member_kind, path, payload, root, archive_path):
    destination = os.path.join(root, *path.split("/"))
    if member_kind == "dir":
        os.makedirs(destination, exist_ok=True)
        return
    parent = os.path.dirname(destination)
    os.makedirs(parent, exist_ok=True)
    if not _inside(parent, root):  # defence in depth; the plan already refused it
        raise UnsafeArchiveError(f"{archive_path}: member {path!r} resolves outside the target folder")
    source = handle.open(payload) if kind == "zip" else handle.extractfile(payload)
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with source, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def content_folder(folder, wrapper):
    """The archive's single top folder ``wrapper`` if that is all ``folder`` holds, else ``folder``."""
    entries = [name for name in os.listdir(folder) if name != MACOS_METADATA]
    if wrapper and entries == [wrapper] and os.path.isdir(os.path.join(folder, wrapper)):
        return os.path.join(folder, wrapper)
    return folder


def move_into_place(content, dest):
    """Merge everything in ``content`` into ``dest``; nothing moves while a link is in the way."""
    os.makedirs(dest, exist_ok=True)
    real_dest = os.path.realpath(dest)  # the dataset folder itself may be a link the user made
    names = [name for name in os.listdir(content) if name != MACOS_METADATA]
    links = [link for name in names for link in _links_in_the_way(os.path.join(content, name),
                                                                   os.path.join(dest, name))]
    if links:
        raise _link_in_the_way(links[0], real_dest)
    for name in names:
        merge_move(os.path.join(content, name), os.path.join(dest, name), real_dest)


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
