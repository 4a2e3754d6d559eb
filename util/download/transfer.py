"""Getting a file onto disk: plain HTTP with resume, Google Drive through gdown.

An HTTP download goes to ``<name>.part``, which is only ever appended to (an
HTTP Range request resumes it) and renamed once complete; gdown keeps partial
files of its own. ``IMSFR_DOWNLOAD_BASE_URL`` (or the scripts' hidden
``--base_url``) replaces every source by ``<base>/<filename>`` over plain HTTP:
used by the tests and for local mirrors.
"""
import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request

import progressbar

from util.download.errors import DownloadError

BASE_URL_ENV = "IMSFR_DOWNLOAD_BASE_URL"
CHUNK = 1 << 20  # bytes per read and write, for transfers, checksums and extraction alike
TIMEOUT_S = 60


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


def fetch(source, path, expected_size=None):
    """Download the ``source_of`` pair ``source`` to ``path``; over HTTP through ``<path>.part``."""
    kind, where = source
    if kind == "gdrive":
        download_gdrive(where, path)
    else:
        part = path + ".part"
        download_http(where, part, expected_size=expected_size)
        os.replace(part, path)


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
