"""Keep the evaluation scripts' results apart from their inputs, and delete only what they wrote.

Two rules:

* **No overlap.** ``--output`` must not be, contain or lie inside a folder the
  run reads frames or annotations from (compared by real path, so symlinks do
  not get around it): :func:`refuse_overlap` raises :class:`OutputError` and
  the script exits 2 before anything is written. Each video's result folder is
  checked again against that video's own input folders (a symlink planted in
  the output folder).
* **A manifest per video.** Every result folder gets a hidden file
  :data:`MANIFEST` (JSON: ``{"tool", "complete", "files"}``), written
  atomically. Before a video is (re)run its manifest is rewritten as
  incomplete and lists every file the run may write, and only then are the
  previous run's files (those listed in the old manifest) removed; after the
  video finishes the manifest is rewritten as complete. So every result file
  that exists is listed in the manifest, also after a crash. A video counts as
  done only when its manifest is complete and lists every expected file, and
  each of them exists. A file with a result name that no manifest lists was not
  written by this tool: the video fails with a message naming it, and the file
  is neither deleted nor overwritten (with or without ``--overwrite``).
"""
import contextlib
import json
import os

from util.fileio import atomic_write_text

MANIFEST = ".imsfr-results.json"
TOOL = "IMSFR evaluation"


class OutputError(ValueError):
    """An output folder that overlaps the input, or holds files this tool did not write."""


def plain_name(name):
    """True if ``name`` is one path component: not empty, not absolute, no separator, not '.'/'..'."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "\0" not in name
            and "/" not in name and os.sep not in name and not (os.altsep and os.altsep in name)
            and not os.path.isabs(name))


def _inside(path, folder):
    """True if real path ``path`` is ``folder`` or lies below it (both real, absolute)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def overlap(output, folders):
    """The first of ``folders`` that ``output`` equals, contains or lies inside (by real path), or None."""
    out = os.path.realpath(output)
    for folder in folders:
        real = os.path.realpath(folder)
        if _inside(out, real) or _inside(real, out):
            return folder
    return None


def refuse_overlap(output, folders, what="--output"):
    """Raise :class:`OutputError` if ``output`` equals, contains or lies inside one of the input ``folders``."""
    folder = overlap(output, folders)
    if folder is not None:
        real = os.path.realpath(output), os.path.realpath(folder)
        via = f" (real paths {real[0]} and {real[1]})" if real != (os.path.abspath(output), os.path.abspath(folder)) \
            else ""
        raise OutputError(f"{what} {output} overlaps the input folder {folder}{via}: results must not be written "
                          f"into, around or inside the input; choose another --output")


def video_input_folders(spec):
    """The folders one video reads its frames and annotations from."""
    paths = list(spec.frame_paths[:1]) + list(spec.annotation_paths.values())
    return sorted({os.path.dirname(os.path.abspath(p)) for p in paths})


def manifest_path(out_dir):
    return os.path.join(out_dir, MANIFEST)


def read_manifest(out_dir):
    """(complete, set of file names) of ``out_dir``'s manifest; None if there is none.

    Raises :class:`OutputError` for a manifest that exists but is not one of ours.
    """
    path = manifest_path(out_dir)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise OutputError(f"{path}: unreadable results manifest ({error}); remove it to redo this video") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not (isinstance(files, list) and all(plain_name(n) and n != MANIFEST for n in files)
            and data.get("tool") == TOOL and isinstance(data.get("complete"), bool)):
        raise OutputError(f"{path}: not a results manifest of this tool (expected {{\"tool\": \"{TOOL}\", "
                          f"\"complete\": true|false, \"files\": [plain file names]}}); remove it to redo this video")
    return data["complete"], set(files)


def write_manifest(out_dir, files, complete):
    atomic_write_text(manifest_path(out_dir), json.dumps(
        {"tool": TOOL, "complete": bool(complete), "files": sorted(files)}, indent=1) + "\n")


def outputs_complete(out_dir, names):
    """True if ``out_dir`` holds a complete manifest listing every one of ``names`` and each file exists."""
    try:
        manifest = read_manifest(out_dir)
    except OutputError:
        return False
    if manifest is None or not manifest[0]:
        return False
    listed = manifest[1]
    return all(name in listed and os.path.isfile(os.path.join(out_dir, name)) for name in names)


def claim_outputs(out_dir, names):
    """Make ``out_dir`` ready for a (re)run that writes ``names``.

    Refuses (:class:`OutputError`, naming the file) an existing file with one of
    ``names`` that the folder's manifest does not list. Otherwise records an
    incomplete manifest listing the old and new files, then removes the files of
    the previous run (only those its manifest lists).
    """
    names = list(names)
    bad = [n for n in names if not plain_name(n) or n == MANIFEST]
    if bad:
        raise OutputError(f"{out_dir}: refusing to write result file name {bad[0]!r}")
    manifest = read_manifest(out_dir)
    owned = manifest[1] if manifest else set()
    for name in names:
        path = os.path.join(out_dir, name)
        if name not in owned and os.path.lexists(path):
            raise OutputError(f"{path}: exists but was not written by this tool (not listed in "
                              f"{manifest_path(out_dir)}); move it away or choose another --output")
    os.makedirs(out_dir, exist_ok=True)
    write_manifest(out_dir, owned | set(names), complete=False)
    for name in sorted(owned):
        path = os.path.join(out_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def mark_complete(out_dir, names):
    """Record that every one of ``names`` in ``out_dir`` was written by a finished run."""
    write_manifest(out_dir, names, complete=True)
