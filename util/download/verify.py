"""Is a downloaded file what it should be, and all of it?

A web page saved in its place (Google Drive's quota page), a size or sha256
that differs from the known one, or an archive that does not read to its end
is refused here, before anything is extracted. Without a known size only the
archive's own structure tells a complete download from a cut one: a zip's
central directory, a tar's end-of-archive marker.
"""
import hashlib
import io
import os
import tarfile
import zipfile
import zlib

from util.download.errors import TruncatedArchiveError, VerificationError
from util.download.transfer import CHUNK

ARCHIVE_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error)


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


def open_archive(path):
    """``(kind, handle)`` for a zip (its central directory read) or a tar; VerificationError for anything else."""
    try:
        if zipfile.is_zipfile(path):
            return "zip", zipfile.ZipFile(path)
        if tarfile.is_tarfile(path):
            return "tar", tarfile.open(path, "r:*")
    except (*ARCHIVE_READ_ERRORS, OSError) as error:
        raise VerificationError(f"{path} is not a readable archive ({error})") from None
    raise VerificationError(f"{path} is neither a zip nor a tar archive (damaged or incomplete download)")


def tar_members(archive, archive_path):
    """Every member header of the open tar ``archive``; TruncatedArchiveError when one is cut."""
    try:
        return archive.getmembers()
    except tarfile.ReadError as error:
        if "unexpected end of data" not in str(error):
            raise
        raise TruncatedArchiveError(f"{archive_path} is truncated ({error})") from None


def check_tar_complete(archive, archive_path, members):
    """TruncatedArchiveError unless the data of every member and the end-of-archive marker are there."""
    if isinstance(archive.fileobj, io.BufferedReader):  # gzip/bz2/xz have no cheap size check
        file_size = os.path.getsize(archive_path)
        for member in members:
            if member.isreg() and member.offset_data + member.size > file_size:
                raise TruncatedArchiveError(f"{archive_path} is truncated (member {member.name!r} ends past "
                                            "the end of the file)")
    _check_end_of_archive(archive, archive_path, members)


def _check_end_of_archive(archive, archive_path, members):
    """A tar ends with two zero blocks; ``tarfile`` stops silently at a missing or broken
    header, so a file cut at a member boundary would otherwise look complete."""
    archive.fileobj.seek(archive.offset)
    marker = archive.fileobj.read(2 * tarfile.BLOCKSIZE)
    if marker != bytes(2 * tarfile.BLOCKSIZE):
        last = f"after member {members[-1].name!r} " if members else ""
        raise TruncatedArchiveError(f"{archive_path} is truncated or damaged: no end-of-archive marker "
                                    f"{last}at byte {archive.offset} (an interrupted download?)")
