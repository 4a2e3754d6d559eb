"""Fetch a model checkpoint by URL and verify its sha256 before it lands in saves/.

    python download_model.py --url URL --sha256 HEX [--name FILE.pth] [--dir saves]

No trained IMSFR checkpoint is published, so there is no default model (STCN's
weights do not fit this network). Google Drive links (drive.google.com, with
an id) go through gdown, anything else through HTTP(S) with resume.
"""
import argparse
import os
import re
import sys
import urllib.parse

from util.download.command_line import REPO_ROOT, run_reporting_errors
from util.download.errors import DownloadError, VerificationError
from util.download.transfer import download_gdrive, download_http
from util.download.verify import sha256_of, verify_file


def gdrive_id_of(url):
    """The file id of a Google Drive link, or None for other URLs."""
    parsed = urllib.parse.urlparse(url)
    if not parsed.netloc.endswith(("drive.google.com", "docs.google.com")):
        return None
    query_id = urllib.parse.parse_qs(parsed.query).get("id")
    if query_id:
        return query_id[0]
    match = re.search(r"/file/d/([\w-]+)", parsed.path)
    return match.group(1) if match else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="http(s) or Google Drive link of the checkpoint")
    parser.add_argument("--sha256", required=True, help="expected sha256 of the file (64 hex digits)")
    parser.add_argument("--name", help="file name in --dir (default: the last part of the URL path)")
    parser.add_argument("--dir", default=os.path.join(REPO_ROOT, "saves"), help="target folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        parser.error(f"--sha256 must be 64 hexadecimal digits, got {args.sha256!r}")
    args.sha256 = args.sha256.lower()
    parsed = urllib.parse.urlparse(args.url)
    if parsed.scheme not in ("http", "https"):
        parser.error(f"--url must be an http(s) link, got {args.url!r}")
    if args.name is None:
        args.name = os.path.basename(urllib.parse.unquote(parsed.path))
        if gdrive_id_of(args.url) or not args.name:
            parser.error("cannot take a file name from this URL; pass --name")
    if os.path.basename(args.name) != args.name or args.name.startswith("."):
        parser.error(f"--name must be a plain file name, got {args.name!r}")
    return args


def fetch_checkpoint(url, sha256, target):
    """Download ``url`` to ``target`` unless a file with that checksum is there; returns 'skipped'/'downloaded'."""
    if os.path.exists(target):
        if sha256_of(target) == sha256:
            print(f"{target} is already present with the expected checksum")
            return "skipped"
        raise DownloadError(f"{target} exists but its sha256 differs from {sha256}; delete it or choose "
                            "another --name")
    part = target + ".part"  # checked before it is renamed, so the final name only ever holds a verified file
    file_id = gdrive_id_of(url)
    print(f"Downloading {url}")
    try:
        if file_id:
            download_gdrive(file_id, part)
        else:
            download_http(url, part)
        verify_file(part, sha256=sha256)
    except VerificationError as error:
        os.remove(part)
        raise DownloadError(f"{error}\nThe download was removed. Check the URL and checksum, or download "
                            f"the file by hand and save it as {target}.") from None
    except DownloadError as error:
        raise DownloadError(f"{error}\nManual alternative: download {url} in a browser, save it as {target} "
                            "and run this command again to verify it.") from None
    os.replace(part, target)
    print(f"Saved {target}")
    return "downloaded"


def main(argv=None):
    args = parse_args(argv)
    def fetch():
        fetch_checkpoint(args.url, args.sha256, os.path.join(args.dir, args.name))
        return 0

    return run_reporting_errors(fetch)

if __name__ == "__main__":
    sys.exit(main())
