"""Hostile and cut-short archives across the archives of one run (issue 12, items 1
and 4): real archives from a loopback HTTP server, real folders, the scripts run
as processes; checked are the exit code, the first line of the message (naming
the file) and the file system afterwards."""
import gzip
import io
import os
import subprocess
import sys
import tarfile

import pytest

import download_bl30k
from tests.helpers_http import FileServer
from tests.test_download import all_files, make_tar, make_zip
from util.download import archives, errors, install
from util.download.errors import UnsafeArchiveError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class NoLengthServer(FileServer):
    """Answers 200 without Content-Length: the body ends where the connection closes."""

    def _send(self, handler, name, range_header, status, body, content_type="application/octet-stream",
              extra=None, cut=None):
        if status != 200:
            return super()._send(handler, name, range_header, status, body, content_type, extra, cut)
        self.requests.append((name, range_header, status))
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.end_headers()
        handler.wfile.write(body if cut is None else body[:cut])
        handler.wfile.flush()
        handler.close_connection = True


@pytest.fixture
def server():
    files = FileServer()
    yield files
    files.close()


@pytest.fixture
def no_length_server():
    files = NoLengthServer()
    yield files
    files.close()


def run_script(script, *argv):
    result = subprocess.run([sys.executable, script, *argv], cwd=REPO, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def bl30k(root, server, *extra):
    return run_script("download_bl30k.py", "--root", str(root), "--yes", "--skip_space_check",
                      "--base_url", server.base_url, *extra)


def first_error_line(result):
    """The line of the message (stderr also carries the progress bar): exactly one starts with 'error: '."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def segment(letter, *extra):
    return make_tar([(f"BL30K/JPEGImages/video_{letter}/00000.jpg", "file", letter.encode()),
                     (f"BL30K/Annotations/video_{letter}/00000.png", "file", letter.upper().encode()), *extra])


# ----------------------------------------------------------------------------- item 1: links across archives

# Segment a plants a link; segment b writes through it (what used to land outside --root).
PLANTED = {
    "symlink-up": ([("BL30K/up", "symlink", "..")], [("BL30K/up/IMSFR/train.py", "file", b"evil")],
                   "'BL30K/up' is a symbolic link to '..'"),
    "chain-of-links": ([("BL30K/a", "symlink", "b"), ("BL30K/b", "symlink", "..")],
                       [("BL30K/a/evil.txt", "file", b"evil")], "'BL30K/a' is a symbolic link to 'b'"),
    "hardlink": ([("BL30K/h", "hardlink", "BL30K/JPEGImages/video_a/00000.jpg")],
                 [("BL30K/h", "file", b"overwrites the shared inode")], "'BL30K/h' is a hard link"),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_link_planted_for_the_next_segment_is_refused(server, tmp_path, case):
    plant, use, expected = PLANTED[case]
    server.files["BL30K_a.tar"] = segment("a", *plant)
    server.files["BL30K_b.tar"] = segment("b", *use)
    for letter in "cdef":
        server.files[f"BL30K_{letter}.tar"] = segment(letter)
    root = tmp_path / "root"
    (root / "IMSFR").mkdir(parents=True)
    (root / "IMSFR/train.py").write_bytes(b"the project's own file")
    result = bl30k(root, server)
    assert result.returncode == 1
    line = first_error_line(result)
    assert f"{root}/BL30K/BL30K_a.tar: member {expected}" in line and "refusing to extract" in line
    # nothing extracted, nothing outside the dataset folder, no marker; the refused archive is kept
    assert all_files(tmp_path) == ["root", "root/BL30K", "root/BL30K/BL30K_a.tar", "root/IMSFR",
                                   "root/IMSFR/train.py"]
    assert (root / "IMSFR/train.py").read_bytes() == b"the project's own file"
    assert server.statuses("BL30K_b.tar") == []


def test_youtube_zip_with_a_link_is_refused(server, tmp_path):
    server.files["youtube2019-train.zip"] = make_zip(
        {"train/JPEGImages/v1/00000.jpg": b"j", "train/Annotations/v1/00000.png": b"p"}, {"train/up": "../.."})
    root = tmp_path / "root"
    result = run_script("download_datasets.py", "youtube2019", "--root", str(root), "--yes",
                        "--base_url", server.base_url)
    assert result.returncode == 1
    line = first_error_line(result)
    assert f"{root}/YouTube/youtube2019-train.zip: member 'train/up' is a symbolic link" in line
    assert all_files(tmp_path) == ["root", "root/YouTube", "root/YouTube/youtube2019-train.zip"]


@pytest.mark.parametrize("link", ["JPEGImages", "Annotations/video_a"])
def test_existing_link_in_the_dataset_folder_is_not_followed(server, tmp_path, link):
    server.files["BL30K_a.tar"] = segment("a")
    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    (outside / "mine.txt").write_bytes(b"user data")
    (root / "BL30K" / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, root / "BL30K" / link)
    result = bl30k(root, server)
    assert result.returncode == 1
    line = first_error_line(result)
    assert f"{root}/BL30K/{link} is a symbolic link in the dataset folder" in line
    assert all_files(outside) == ["mine.txt"] and (outside / "mine.txt").read_bytes() == b"user data"
    assert os.readlink(root / "BL30K" / link) == str(outside)
    assert sorted(os.listdir(root / "BL30K")) == sorted({"BL30K_a.tar", link.split("/")[0]})
    assert not (root / "BL30K/Annotations/video_a/00000.png").exists()


def test_dataset_folder_that_is_itself_a_link_is_used(server, tmp_path):
    # A user may keep the 700 GB elsewhere: only links inside the dataset folder are refused.
    for letter in "abcdef":
        server.files[f"BL30K_{letter}.tar"] = segment(letter)
    root, disk = tmp_path / "root", tmp_path / "disk"
    (disk / "BL30K").mkdir(parents=True)
    root.mkdir()
    os.symlink(disk / "BL30K", root / "BL30K")
    argv = ["--root", str(root), "--yes", "--skip_space_check", "--base_url", server.base_url]
    assert download_bl30k.main(argv) == 0
    assert sorted(os.listdir(disk / "BL30K/JPEGImages")) == [f"video_{x}" for x in "abcdef"]
    assert os.listdir(root) == ["BL30K"] and os.path.islink(root / "BL30K")


def test_archive_carrying_a_completion_marker_is_refused(server, tmp_path):
    # Segment a must not be able to mark segment b as done.
    server.files["BL30K_a.tar"] = segment("a", ("BL30K/.complete-bl30k-b", "file", b"{}"))
    spec = download_bl30k.SEGMENTS[0]
    with pytest.raises(UnsafeArchiveError, match=r"BL30K_a\.tar: member '\.complete-bl30k-b' has the name"):
        install.install_archive(str(tmp_path), spec, base_url=server.base_url, check_space=False)
    assert all_files(tmp_path) == ["BL30K", "BL30K/BL30K_a.tar"]


def test_merge_never_writes_outside_the_dataset_folder(tmp_path):
    # The final real-path check, for a link that appears after the pre-check.
    source, dest, outside = tmp_path / "src", tmp_path / "dest", tmp_path / "outside"
    (source / "a").mkdir(parents=True)
    (source / "a/x.txt").write_bytes(b"x")
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "a")
    with pytest.raises(UnsafeArchiveError, match="is a symbolic link in the dataset folder"):
        archives.merge_move(str(source / "a"), str(dest / "a"), os.path.realpath(dest))
    with pytest.raises(UnsafeArchiveError, match="lies outside the dataset folder"):
        archives.merge_move(str(source / "a/x.txt"), str(dest / "a/x.txt"), os.path.realpath(dest))
    assert os.listdir(outside) == [] and (source / "a/x.txt").exists()


# ----------------------------------------------------------------------------- item 4: cut at a member boundary


def cut_at_member_boundary(data):
    """``data`` without its end-of-archive blocks: what a transfer cut after the last member leaves."""
    with io.BytesIO(data) as buffer:
        with tarfile.open(fileobj=buffer) as archive:
            archive.getmembers()
            end = archive.offset
    assert data[end:end + 1024] == bytes(1024)
    return data[:end]


def test_segment_cut_at_a_member_boundary_with_content_length_is_not_installed(server, tmp_path):
    full = segment("a")
    server.files["BL30K_a.tar"] = cut_at_member_boundary(full)  # the mirror holds a cut file
    root = tmp_path / "root"
    result = bl30k(root, server)
    assert result.returncode == 1
    line = first_error_line(result)
    assert f"{root}/BL30K/BL30K_a.tar is truncated or damaged: no end-of-archive marker" in line
    assert f"kept as {root}/BL30K/BL30K_a.tar.part" in result.stderr
    assert all_files(tmp_path) == ["root", "root/BL30K", "root/BL30K/BL30K_a.tar.part"]


def test_segment_cut_without_content_length_is_kept_and_resumed(no_length_server, tmp_path):
    full = segment("a")
    short = cut_at_member_boundary(full)
    for letter in "abcdef":
        no_length_server.files[f"BL30K_{letter}.tar"] = segment(letter)
    no_length_server.cut_after["BL30K_a.tar"] = len(short)
    root = tmp_path / "root"
    result = bl30k(root, no_length_server)
    assert result.returncode == 1
    line = first_error_line(result)
    assert f"{root}/BL30K/BL30K_a.tar is truncated or damaged: no end-of-archive marker" in line
    assert all_files(tmp_path) == ["root", "root/BL30K", "root/BL30K/BL30K_a.tar.part"]
    assert (root / "BL30K/BL30K_a.tar.part").read_bytes() == short
    # the connection is fixed: the next run resumes where the cut was and completes
    no_length_server.cut_after.clear()
    result = bl30k(root, no_length_server)
    assert result.returncode == 0, result.stderr
    assert no_length_server.requests[1] == ("BL30K_a.tar", f"bytes={len(short)}-", 206)
    assert (root / "BL30K/Annotations/video_a/00000.png").read_bytes() == b"A"
    assert sorted(name for name in os.listdir(root / "BL30K") if name.startswith(".complete-")) == \
        [f".complete-bl30k-{x}" for x in "abcdef"]


def test_bl30k_without_its_folders_is_not_complete(server, tmp_path, capsys):
    for letter in "abcdef":
        server.files[f"BL30K_{letter}.tar"] = make_tar([(f"BL30K/other/{letter}.txt", "file", b"x")])
    argv = ["--root", str(tmp_path), "--yes", "--skip_space_check", "--base_url", server.base_url]
    assert download_bl30k.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}/BL30K: all six segments are in but nothing matches JPEGImages/*")
    assert "BL30K is complete" not in err
    assert download_bl30k.main(argv) == 1  # and a re-run does not call it complete either
    assert "all six segments are in but nothing matches" in capsys.readouterr().err


def test_gzip_tar_cut_at_a_member_boundary_is_refused(tmp_path):
    archive = tmp_path / "cut.tar.gz"
    archive.write_bytes(gzip.compress(cut_at_member_boundary(segment("a"))))
    with pytest.raises(errors.VerificationError, match="no end-of-archive marker"):
        archives.safe_extract(str(archive), str(tmp_path / "out"))
    assert all_files(tmp_path) == ["cut.tar.gz"]


@pytest.mark.parametrize("name", ["BL30K_a.tar", "BL30K_a.tar.part", ".extracting-bl30k-a"])
def test_link_left_where_the_tool_writes_its_own_files_is_refused(server, tmp_path, name):
    # What an archive accepted by an older version could have left behind.
    server.files["BL30K_a.tar"] = segment("a")
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "BL30K").mkdir(parents=True)
    outside.mkdir()
    (outside / "victim").write_bytes(b"user data")
    os.symlink(outside / "victim" if "tar" in name else outside, root / "BL30K" / name)
    result = bl30k(root, server)
    assert result.returncode == 1
    assert f"{root}/BL30K/{name} is a symbolic link where this tool keeps its own file" in first_error_line(result)
    assert all_files(outside) == ["victim"] and (outside / "victim").read_bytes() == b"user data"
    assert os.listdir(root / "BL30K") == [name] and server.requests == []


@pytest.mark.parametrize("cut", [700, 1600])  # inside the first member's data, inside the second header
def test_segment_cut_inside_a_member_is_kept_for_resuming(no_length_server, tmp_path, cut):
    no_length_server.files["BL30K_a.tar"] = segment("a")
    no_length_server.cut_after["BL30K_a.tar"] = cut
    root = tmp_path / "root"
    result = bl30k(root, no_length_server)
    assert result.returncode == 1
    assert f"{root}/BL30K/BL30K_a.tar is truncated" in first_error_line(result)
    assert all_files(tmp_path) == ["root", "root/BL30K", "root/BL30K/BL30K_a.tar.part"]
    assert (root / "BL30K/BL30K_a.tar.part").read_bytes() == segment("a")[:cut]
