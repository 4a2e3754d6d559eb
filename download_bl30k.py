"""Download and extract BL30K (six tar segments of ~115 GB) into <root>/BL30K.

    python download_bl30k.py [--root DIR] [--yes] [--keep_archives] [--list] [--skip_space_check]

Segments are handled one at a time (download, verify, extract, delete), with a
free-space check before each, so about 230 GB must be free at any moment
(~690 GB for the extracted dataset in the end). Finished segments are skipped
and a partial download resumes.
"""
import argparse
import os
import sys

from util.download.command_line import add_common_arguments, confirm, run_reporting_errors
from util.download.errors import DownloadError
from util.download.install import Archive, archive_status, install_archive, is_complete, missing_expected

SEGMENT_BYTES = 115 * 10**9  # approximate; the exact sizes are not published
# What each segment must contain, as far as it is known: sizes, checksums and the split of the
# videos over the six segments are not published, so a segment is accepted when it is a complete
# tar (its end-of-archive marker present) of plain files and folders only (no links, no special
# files), unpacked from its BL30K/ wrapper folder. The whole is checked once all six are in:
# videos in both of these folders.
DATASET_EXPECT = ("JPEGImages/*", "Annotations/*")

SEGMENTS = tuple(
    Archive(f"bl30k-{letter}", f"BL30K_{letter}.tar", "BL30K", gdrive_id=file_id, strip="BL30K",
            approx_size=SEGMENT_BYTES)
    for letter, file_id in zip("abcdef", (
        "1z9V5zxLOJLNt1Uj7RFqaP2FZWKzyXvVc", "11-IzgNwEAPxgagb67FSrBdzZR7OKAEdJ",
        "1ZfIv6GTo-OGpXpoKen1fUvDQ0A_WoQ-Q", "1G4eXgYS2kL7_Cc0x3N1g1x7Zl8D_aU_-",
        "1Y8q0V_oBwJIY27W_6-8CD1dRqV2gNTdE", "1nawBAazf_unMv46qGBHhWcQ4JXZ5883r")))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--skip_space_check", action="store_true",
                        help="do not refuse to start a segment when free space looks too small")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    root = os.path.abspath(args.root)
    if args.list:
        for segment in SEGMENTS:
            print(f"{segment.filename:14s} {archive_status(root, segment)}")
        return 0
    pending = [segment for segment in SEGMENTS if not is_complete(root, segment)]
    if not pending:
        return run_reporting_errors(lambda: check_dataset(root, "BL30K is already complete"))
    print(f"BL30K: {len(pending)} of {len(SEGMENTS)} segments to fetch into {root}/BL30K "
          f"(~{SEGMENT_BYTES / 1e9:.0f} GB each; ~{2 * SEGMENT_BYTES / 1e9:.0f} GB free needed while one is "
          "extracted)")
    def fetch():
        if not confirm("Download and extract BL30K?", args.yes):
            print("Nothing done.")
            return 1
        for index, segment in enumerate(pending, 1):
            print(f"Segment {segment.filename} ({index}/{len(pending)})")
            install_archive(root, segment, base_url=args.base_url, keep_archive=args.keep_archives,
                            check_space=not args.skip_space_check)
        return check_dataset(root, "BL30K is complete")

    return run_reporting_errors(fetch)


def check_dataset(root, done):
    """Print ``done`` and return 0 when the six segments together hold DATASET_EXPECT."""
    folder = os.path.join(root, "BL30K")
    missing = missing_expected(folder, DATASET_EXPECT)
    if missing:
        raise DownloadError(f"{folder}: all six segments are in but nothing matches {', '.join(missing)}; "
                            "the segments are not the BL30K files (delete the .complete-bl30k-* markers "
                            "there to fetch them again)")
    print(f"{done} in {folder}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
