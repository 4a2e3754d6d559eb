"""Download and extract the training and evaluation datasets beside the repository.

    python download_datasets.py --list
    python download_datasets.py [NAME ...] [--only NAME ...] [--root DIR] [--yes] [--keep_archives] [--no_resize]

Without names every dataset is fetched. Finished datasets are skipped, partial
downloads resume, and the YouTube-VOS 2019 training set is resized to 480p
(shorter side) after extraction, as the training code expects.
"""
import argparse
import os
import sys

from util.download.command_line import add_common_arguments, confirm, run_reporting_errors
from util.download.errors import DownloadError
from util.download.install import Archive, Dataset, archive_status, install_archive, is_complete
from util.fileio import atomic_write_text

STATIC_FOLDERS = ("fss", "DUTS-TR", "DUTS-TE", "ecssd", "BIG_small", "HRSOD_small")

# Sizes and checksums of the Google Drive files are not published: None means "not checked".
# Local file names are unique so that a mirror can serve them as <base>/<filename>.
DATASETS = {dataset.name: dataset for dataset in (
    Dataset("static", "static image sets (FSS, DUTS, ECSSD, BIG, HRSOD) for pre-training -> static/", (
        Archive("static", "static_data.zip", "static", gdrive_id="1wUJq3HcLdN-z1t4CsUhjeZ9BVDb9YKLd",
                strip="static", expect=STATIC_FOLDERS),)),
    Dataset("davis2016", "DAVIS 2016 -> DAVIS/2016/", (
        Archive("davis2016", "DAVIS-2016.zip", "DAVIS", dest="DAVIS/2016",
                gdrive_id="198aRlh5CpAoFz0hfRgYbiNenn_K8DxWD", strip="DAVIS", expect=("JPEGImages", "Annotations")),)),
    Dataset("davis2017", "DAVIS 2017 trainval 480p -> DAVIS/2017/trainval/", (
        Archive("davis2017-trainval", "DAVIS-2017-trainval-480p.zip", "DAVIS/2017", dest="DAVIS/2017/trainval",
                gdrive_id="1kiaxrX_4GuW6NmiVuKGSGVoKGWjOdp6d", strip="DAVIS",
                expect=("JPEGImages/480p", "Annotations/480p", "ImageSets/2017")),)),
    Dataset("davis2017-testdev", "DAVIS 2017 test-dev 480p -> DAVIS/2017/test-dev/", (
        Archive("davis2017-testdev", "DAVIS-2017-test-dev-480p.zip", "DAVIS/2017", dest="DAVIS/2017/test-dev",
                gdrive_id="1fmkxU2v9cQwyb62Tj1xFDdh2p4kDsUzD", strip="DAVIS",
                expect=("JPEGImages/480p", "Annotations/480p")),)),
    Dataset("youtube2019", "YouTube-VOS 2019 train (+480p copy), valid and all-frames valid -> YouTube/", (
        Archive("youtube2019-train", "youtube2019-train.zip", "YouTube",
                gdrive_id="13Eqw0gVK-AO5B-cqvJ203mZ2vzWck9s4", expect=("train/JPEGImages", "train/Annotations")),
        Archive("youtube2019-valid", "youtube2019-valid.zip", "YouTube",
                gdrive_id="1o586Wjya-f2ohxYf9C1RlRH-gkrzGS8t", expect=("valid/JPEGImages", "valid/Annotations")),
        Archive("youtube2019-valid-all-frames", "youtube2019-valid-all-frames.zip", "YouTube/all_frames",
                gdrive_id="1rWQzZcMskgpEQOZdJPJ7eTmLCBEIIpEN", expect=("valid*/JPEGImages",)))),
    Dataset("youtube2018", "YouTube-VOS 2018 valid and all-frames valid -> YouTube2018/", (
        Archive("youtube2018-valid", "youtube2018-valid.zip", "YouTube2018",
                gdrive_id="1-QrceIl5sUNTKz7Iq0UsWC6NLZq7girr", expect=("valid/JPEGImages", "valid/Annotations")),
        Archive("youtube2018-valid-all-frames", "youtube2018-valid-all-frames.zip", "YouTube2018/all_frames",
                gdrive_id="1yVoHM6zgdcL348cFpolFcEl4IC1gorbV", expect=("valid*/JPEGImages",)))),
)}

# The YouTube-VOS 2019 training set is used at 480p (shorter side), like the reference.
RESIZE = dict(dataset="youtube2019", source="YouTube/train", output="YouTube/train_480p", length=480,
              marker="YouTube/.complete-train_480p")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"datasets to fetch: {', '.join(DATASETS)} "
                        "(default: all)")
    parser.add_argument("--only", nargs="+", default=[], metavar="NAME", help="same as the positional names")
    parser.add_argument("--no_resize", action="store_true",
                        help="do not make the 480p copy of the YouTube-VOS 2019 training set")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="processes for the 480p resizing (default: %(default)s)")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names + args.only) - set(DATASETS))
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    return args


def selected(args):
    names = list(dict.fromkeys(args.names + args.only)) or list(DATASETS)
    return [DATASETS[name] for name in names]


def resize_done(root):
    return os.path.isfile(os.path.join(root, RESIZE["marker"]))


def make_480p(root, workers):
    """Resize the YouTube training set; the marker makes later runs skip it."""
    from scripts.resize_length import ResizeError, resize_dataset

    source, output = os.path.join(root, RESIZE["source"]), os.path.join(root, RESIZE["output"])
    print(f"Resizing {source} to {RESIZE['length']}p in {output}")
    try:
        summary = resize_dataset(source, output, RESIZE["length"], workers=workers)
    except ResizeError as error:
        raise DownloadError(str(error)) from None
    if summary["failed"]:
        raise DownloadError("resizing failed for: " + "; ".join(summary["failed"]))
    atomic_write_text(os.path.join(root, RESIZE["marker"]), f"{RESIZE['length']}\n")


def print_list(root):
    print(f"Data root: {root}")
    for dataset in DATASETS.values():
        print(f"{dataset.name:18s} {dataset.description}")
        for archive in dataset.archives:
            print(f"    {archive.filename:32s} {archive_status(root, archive)}")
        if dataset.name == RESIZE["dataset"]:
            print(f"    {'480p copy of train':32s} {'complete' if resize_done(root) else 'missing'}")


def main(argv=None):
    args = parse_args(argv)
    root = os.path.abspath(args.root)
    if args.list:
        print_list(root)
        return 0
    datasets = selected(args)
    pending = [(dataset, archive) for dataset in datasets for archive in dataset.archives
               if not is_complete(root, archive)]
    resize = (not args.no_resize and any(dataset.name == RESIZE["dataset"] for dataset in datasets)
              and not resize_done(root))
    if not pending and not resize:
        print(f"Already complete in {root}: {', '.join(dataset.name for dataset in datasets)}")
        return 0
    print(f"Data root: {root}")
    for dataset, archive in pending:
        print(f"  {dataset.name}: {archive.filename} -> {os.path.join(root, archive.dest_folder)}")
    if resize:
        print(f"  then a {RESIZE['length']}p copy of {os.path.join(root, RESIZE['source'])}")
    def fetch():
        if not confirm("Download and extract these files?", args.yes):
            print("Nothing done.")
            return 1
        for _, archive in pending:
            install_archive(root, archive, base_url=args.base_url, keep_archive=args.keep_archives)
        if resize:
            make_480p(root, args.workers)
        print("All selected datasets are complete.")
        return 0

    return run_reporting_errors(fetch)

if __name__ == "__main__":
    sys.exit(main())
