"""Download scripts against a loopback HTTP server: resume, verification, safe extraction."""
import collections
import dataclasses
import hashlib
import io
import os
import stat
import sys
import tarfile
import zipfile

import pytest

import download_bl30k
import download_datasets
import download_model
from tests.helpers_http import FileServer
from util.download import archives, command_line, errors, install, transfer
from util.download.errors import DownloadError, UnsafeArchiveError, VerificationError
from util.download.install import Archive


DiskUsage = collections.namedtuple("DiskUsage", "total used free")


@pytest.fixture
def server():
    files = FileServer()
    yield files
    files.close()


def make_zip(files, symlinks=None):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def make_tar(members):
    """``members``: (name, kind, payload) with kind file/dir/symlink/hardlink/fifo."""
    buffer = io.BytesIO()
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "fifo": tarfile.FIFOTYPE}
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = types[kind]
            if kind == "file":
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
            else:
                info.linkname = payload or ""
                archive.addfile(info)
    return buffer.getvalue()


def all_files(folder):
    return sorted(os.path.relpath(os.path.join(base, name), folder)
                  for base, dirs, files in os.walk(folder) for name in files + dirs)


DAVIS_ZIP = make_zip({"DAVIS/JPEGImages/480p/bear/00000.jpg": b"jpeg-bytes",
                      "DAVIS/Annotations/480p/bear/00000.png": b"png-bytes",
                      "DAVIS/ImageSets/2017/train.txt": b"bear\n"})


def davis_archive(**changes):
    spec = Archive("davis-test", "davis.zip", "DAVIS/2017", dest="DAVIS/2017/trainval", gdrive_id="FILEID",
                   strip="DAVIS", expect=("JPEGImages/480p", "Annotations/480p", "ImageSets/2017"))
    return dataclasses.replace(spec, **changes)


# ----------------------------------------------------------------------------- transfer


def test_http_download_resumes_partial_file(server, tmp_path):
    data = bytes(range(256)) * 40
    server.files["blob.bin"] = data
    part = tmp_path / "blob.bin.part"
    part.write_bytes(data[:1000])
    transfer.download_http(server.url("blob.bin"), str(part))
    assert part.read_bytes() == data
    assert server.requests == [("blob.bin", "bytes=1000-", 206)]


def test_http_download_restarts_when_server_ignores_range(server, tmp_path):
    data = os.urandom(5000)
    server.files["blob.bin"] = data
    server.honour_range = False
    part = tmp_path / "blob.bin.part"
    part.write_bytes(b"garbage that is not a prefix")
    transfer.download_http(server.url("blob.bin"), str(part))
    assert part.read_bytes() == data
    assert server.statuses("blob.bin") == [200]


def test_interrupted_transfer_keeps_partial_file_and_resumes(server, tmp_path):
    data = os.urandom(300_000)
    server.files["blob.bin"] = data
    server.cut_after["blob.bin"] = 120_000
    part = tmp_path / "blob.bin.part"
    with pytest.raises(DownloadError, match="run again to resume"):
        transfer.download_http(server.url("blob.bin"), str(part))
    assert part.read_bytes() == data[:120_000]
    server.cut_after.clear()
    transfer.download_http(server.url("blob.bin"), str(part))
    assert part.read_bytes() == data
    assert server.requests[-1] == ("blob.bin", "bytes=120000-", 206)


def test_complete_partial_file_gets_416_and_is_kept(server, tmp_path):
    server.files["blob.bin"] = b"abc"
    part = tmp_path / "blob.bin.part"
    part.write_bytes(b"abc")
    transfer.download_http(server.url("blob.bin"), str(part))
    assert part.read_bytes() == b"abc"
    assert server.statuses("blob.bin") == [416]


def test_missing_file_and_unreachable_server_are_clear_errors(server, tmp_path):
    with pytest.raises(DownloadError, match=r"404 .*the file is gone"):
        transfer.download_http(server.url("nothing.zip"), str(tmp_path / "x.part"))
    url = server.url("nothing.zip")
    server.close()
    with pytest.raises(DownloadError, match="cannot reach .*check the network"):
        transfer.download_http(url, str(tmp_path / "x.part"))


# ----------------------------------------------------------------------------- install


def test_install_archive_layout_marker_and_skip(server, tmp_path):
    server.files["davis.zip"] = DAVIS_ZIP
    root = str(tmp_path)
    assert install.install_archive(root, davis_archive(), base_url=server.base_url) == "installed"
    trainval = tmp_path / "DAVIS/2017/trainval"
    assert all_files(trainval) == ["Annotations", "Annotations/480p", "Annotations/480p/bear",
                                   "Annotations/480p/bear/00000.png", "ImageSets", "ImageSets/2017",
                                   "ImageSets/2017/train.txt", "JPEGImages", "JPEGImages/480p",
                                   "JPEGImages/480p/bear", "JPEGImages/480p/bear/00000.jpg"]
    assert (trainval / "JPEGImages/480p/bear/00000.jpg").read_bytes() == b"jpeg-bytes"
    assert sorted(os.listdir(tmp_path / "DAVIS/2017")) == [".complete-davis-test", "trainval"]
    assert install.install_archive(root, davis_archive(), base_url=server.base_url) == "skipped"
    assert server.statuses("davis.zip") == [200]


def test_interrupted_extraction_is_redone_from_the_kept_archive(server, tmp_path):
    server.files["davis.zip"] = DAVIS_ZIP
    root, spec = str(tmp_path), davis_archive()
    install.install_archive(root, spec, base_url=server.base_url, keep_archive=True)
    os.remove(install.marker_path(root, spec))
    os.remove(tmp_path / "DAVIS/2017/trainval/JPEGImages/480p/bear/00000.jpg")
    (tmp_path / "DAVIS/2017/.extracting-davis-test/DAVIS").mkdir(parents=True)  # leftover of a crash
    assert install.install_archive(root, spec, base_url=server.base_url) == "installed"
    assert (tmp_path / "DAVIS/2017/trainval/JPEGImages/480p/bear/00000.jpg").read_bytes() == b"jpeg-bytes"
    assert sorted(os.listdir(tmp_path / "DAVIS/2017")) == [".complete-davis-test", "trainval"]
    assert server.statuses("davis.zip") == [200]  # no second download


def test_checksum_mismatch_stops_without_extracted_files(server, tmp_path):
    server.files["davis.zip"] = DAVIS_ZIP
    spec = davis_archive(sha256="0" * 64)
    with pytest.raises(VerificationError) as error:
        install.install_archive(str(tmp_path), spec, base_url=server.base_url)
    message = str(error.value)
    assert "sha256 checksum mismatch" in message and "davis.zip" in message
    assert "https://drive.google.com/uc?id=FILEID" in message
    assert all_files(tmp_path) == ["DAVIS", "DAVIS/2017"]


def test_right_checksum_and_size_pass(server, tmp_path):
    server.files["davis.zip"] = DAVIS_ZIP
    spec = davis_archive(sha256=hashlib.sha256(DAVIS_ZIP).hexdigest(), size=len(DAVIS_ZIP))
    assert install.install_archive(str(tmp_path), spec, base_url=server.base_url) == "installed"


def test_truncated_archive_of_known_size_is_resumed(server, tmp_path):
    server.files["davis.zip"] = DAVIS_ZIP
    (tmp_path / "DAVIS/2017").mkdir(parents=True)
    (tmp_path / "DAVIS/2017/davis.zip").write_bytes(DAVIS_ZIP[:100])
    spec = davis_archive(size=len(DAVIS_ZIP))
    assert install.install_archive(str(tmp_path), spec, base_url=server.base_url) == "installed"
    assert server.requests == [("davis.zip", "bytes=100-", 206)]


def test_damaged_archive_of_unknown_size_is_fetched_again(server, tmp_path, capsys):
    server.files["davis.zip"] = DAVIS_ZIP
    (tmp_path / "DAVIS/2017").mkdir(parents=True)
    (tmp_path / "DAVIS/2017/davis.zip").write_bytes(DAVIS_ZIP[:150])
    assert install.install_archive(str(tmp_path), davis_archive(), base_url=server.base_url) == "installed"
    assert "downloading it again" in capsys.readouterr().out
    assert server.requests == [("davis.zip", None, 200)]


def test_html_page_instead_of_archive_is_detected(server, tmp_path):
    server.html.add("davis.zip")
    with pytest.raises(VerificationError) as error:
        install.install_archive(str(tmp_path), davis_archive(), base_url=server.base_url)
    message = str(error.value)
    assert "web page" in message and "quota" in message
    assert "https://drive.google.com/uc?id=FILEID" in message
    assert str(tmp_path / "DAVIS/2017/davis.zip") in message
    assert all_files(tmp_path) == ["DAVIS", "DAVIS/2017"]


def test_archive_without_expected_folders_is_refused(server, tmp_path):
    server.files["davis.zip"] = make_zip({"DAVIS/readme.txt": b"hi"})
    with pytest.raises(VerificationError, match="does not contain the expected JPEGImages/480p"):
        install.install_archive(str(tmp_path), davis_archive(), base_url=server.base_url)
    assert not (tmp_path / "DAVIS/2017/trainval").exists()
    assert not os.path.exists(install.marker_path(str(tmp_path), davis_archive()))


def test_unsafe_archive_is_refused_by_install(server, tmp_path):
    server.files["davis.zip"] = make_zip({"DAVIS/JPEGImages/480p/a.jpg": b"x", "../../escape.txt": b"x"})
    root = tmp_path / "data"
    with pytest.raises(UnsafeArchiveError, match=r"'\.\./\.\./escape\.txt' contains '\.\.'"):
        install.install_archive(str(root), davis_archive(), base_url=server.base_url)
    assert all_files(tmp_path) == ["data", "data/DAVIS", "data/DAVIS/2017", "data/DAVIS/2017/davis.zip"]


def test_free_space_check_refuses_before_downloading(server, tmp_path, monkeypatch):
    server.files["davis.zip"] = DAVIS_ZIP
    monkeypatch.setattr(command_line.shutil, "disk_usage", lambda path: DiskUsage(10**12, 10**12 - 5 * 10**9, 5 * 10**9))
    spec = davis_archive(approx_size=4 * 10**9)
    with pytest.raises(DownloadError, match=r"not enough free space .*8\.0 GB needed.*5\.0 GB free"):
        install.install_archive(str(tmp_path), spec, base_url=server.base_url)
    assert server.requests == []


# ----------------------------------------------------------------------------- safe extraction

GOOD = ("ok/file.txt", "file", b"fine")
UNSAFE_TARS = {
    "dotdot": [GOOD, ("../evil.txt", "file", b"x")],
    "absolute": [GOOD, ("/tmp/evil-imsfr.txt", "file", b"x")],
    "symlink-absolute": [GOOD, ("ok/link", "symlink", "/etc")],
    "symlink-escapes": [GOOD, ("ok/link", "symlink", "../../outside")],
    "hardlink-escapes": [GOOD, ("ok/hard", "hardlink", "../outside.txt")],
    "hardlink-absolute": [GOOD, ("ok/hard", "hardlink", "/etc/passwd")],
    "through-link": [GOOD, ("ok/link", "symlink", "."), ("ok/link/x.txt", "file", b"x")],
    # lexically inside (ok/x), but ok/up is the root itself, so the real target is outside
    "link-via-link": [GOOD, ("ok/up", "symlink", ".."), ("l2", "symlink", "ok/up/../x")],
    "fifo": [GOOD, ("ok/pipe", "fifo", None)],
}
UNSAFE_ZIPS = {
    "dotdot": ({"ok/file.txt": b"fine", "ok/../../evil.txt": b"x"}, {}),
    "absolute": ({"ok/file.txt": b"fine", "/tmp/evil-imsfr.txt": b"x"}, {}),
    "backslash-dotdot": ({"ok/file.txt": b"fine", "..\\evil.txt": b"x"}, {}),
    "symlink-escapes": ({"ok/file.txt": b"fine"}, {"ok/link": "../../outside"}),
    "symlink-absolute": ({"ok/file.txt": b"fine"}, {"ok/link": "/etc/passwd"}),
}


@pytest.mark.parametrize("case", sorted(UNSAFE_TARS))
def test_unsafe_tar_is_refused_and_nothing_written(tmp_path, case):
    archive = tmp_path / "evil.tar"
    archive.write_bytes(make_tar(UNSAFE_TARS[case]))
    target = tmp_path / "a" / "b" / "target"
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        archives.safe_extract(str(archive), str(target))
    assert all_files(tmp_path) == ["evil.tar"]
    assert not os.path.exists("/tmp/evil-imsfr.txt")


@pytest.mark.parametrize("case", sorted(UNSAFE_ZIPS))
def test_unsafe_zip_is_refused_and_nothing_written(tmp_path, case):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(make_zip(*UNSAFE_ZIPS[case]))
    target = tmp_path / "a" / "b" / "target"
    with pytest.raises(UnsafeArchiveError, match="refusing to extract"):
        archives.safe_extract(str(archive), str(target))
    assert all_files(tmp_path) == ["evil.zip"]


@pytest.mark.parametrize("kind, member", [("symlink", ("data/link", "symlink", "a.txt")),
                                           ("hardlink", ("data/b.txt", "hardlink", "data/a.txt"))])
def test_even_links_inside_the_archive_are_refused(tmp_path, kind, member):
    # None of the datasets needs a link, and links are what lets one archive prepare an escape for the next.
    archive = tmp_path / "links.tar"
    archive.write_bytes(make_tar([("data", "dir", None), ("data/a.txt", "file", b"A"), member]))
    with pytest.raises(UnsafeArchiveError, match=f"{member[0]}' is a {kind[:-4]}\\w* link"):
        archives.safe_extract(str(archive), str(tmp_path / "out"))
    assert all_files(tmp_path) == ["links.tar"]
    zipped = tmp_path / "links.zip"
    zipped.write_bytes(make_zip({"data/a.txt": b"A"}, {"data/link": "a.txt"}))
    with pytest.raises(UnsafeArchiveError, match="'data/link' is a symbolic link"):
        archives.safe_extract(str(zipped), str(tmp_path / "out"))
    assert all_files(tmp_path) == ["links.tar", "links.zip"]


def test_not_an_archive_is_a_verification_error(tmp_path):
    bogus = tmp_path / "x.zip"
    bogus.write_bytes(b"PK\x03\x04 but not really a zip file" * 10)
    with pytest.raises(VerificationError, match="neither a zip nor a tar"):
        archives.safe_extract(str(bogus), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_truncated_tar_is_detected_before_writing(tmp_path):
    data = make_tar([("a.txt", "file", b"a" * 5000), ("b.txt", "file", b"b" * 5000)])
    archive = tmp_path / "cut.tar"
    archive.write_bytes(data[:7000])
    with pytest.raises(VerificationError):
        archives.safe_extract(str(archive), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- confirmation


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_confirm_refuses_without_a_terminal_and_asks_with_one(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    with pytest.raises(errors.ConfirmationRequired, match="--yes"):
        command_line.confirm("go?", assume_yes=False)
    assert command_line.confirm("go?", assume_yes=True) is True
    monkeypatch.setattr(sys, "stdin", FakeTTY("y\n"))
    assert command_line.confirm("go?", assume_yes=False) is True
    monkeypatch.setattr(sys, "stdin", FakeTTY("n\n"))
    assert command_line.confirm("go?", assume_yes=False) is False


# ----------------------------------------------------------------------------- scripts


def test_download_datasets_script_fetches_then_skips(server, tmp_path, monkeypatch, capsys):
    server.files["DAVIS-2017-trainval-480p.zip"] = DAVIS_ZIP
    monkeypatch.setenv(transfer.BASE_URL_ENV, server.base_url)
    assert download_datasets.main(["davis2017", "--root", str(tmp_path), "--yes"]) == 0
    trainval = tmp_path / "DAVIS/2017/trainval"
    assert (trainval / "Annotations/480p/bear/00000.png").read_bytes() == b"png-bytes"
    assert not (tmp_path / "DAVIS/2017/DAVIS-2017-trainval-480p.zip").exists()
    capsys.readouterr()
    assert download_datasets.main(["--only", "davis2017", "--root", str(tmp_path)]) == 0
    assert "Already complete" in capsys.readouterr().out
    assert server.statuses("DAVIS-2017-trainval-480p.zip") == [200]
    assert download_datasets.main(["--list", "--root", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert "DAVIS-2017-trainval-480p.zip     complete" in listing
    assert "static_data.zip                  missing" in listing


def test_download_datasets_script_reports_checksum_mismatch(server, tmp_path, monkeypatch, capsys):
    server.files["DAVIS-2017-trainval-480p.zip"] = DAVIS_ZIP
    original = download_datasets.DATASETS["davis2017"]
    bad = dataclasses.replace(original, archives=(dataclasses.replace(original.archives[0], sha256="ab" * 32),))
    monkeypatch.setitem(download_datasets.DATASETS, "davis2017", bad)
    code = download_datasets.main(["davis2017", "--root", str(tmp_path), "--yes", "--base_url", server.base_url])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and "sha256 checksum mismatch" in err and "Traceback" not in err
    assert "https://drive.google.com/uc?id=1kiaxrX_4GuW6NmiVuKGSGVoKGWjOdp6d" in err
    assert all_files(tmp_path) == ["DAVIS", "DAVIS/2017"]


def test_download_datasets_script_refuses_without_yes_off_a_terminal(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert download_datasets.main(["static", "--root", str(tmp_path), "--base_url", server.base_url]) == 1
    assert "pass --yes" in capsys.readouterr().err
    assert server.requests == []


def test_download_datasets_script_rejects_unknown_names(capsys):
    with pytest.raises(SystemExit) as exit_info:
        download_datasets.main(["davis2099"])
    assert exit_info.value.code == 2
    assert "unknown dataset(s) davis2099" in capsys.readouterr().err


def test_download_datasets_youtube2019_with_480p_copy(server, tmp_path, monkeypatch):
    from PIL import Image

    frame = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 10, 10)).save(frame, format="JPEG")
    mask = io.BytesIO()
    Image.new("P", (16, 12), 1).save(mask, format="PNG")
    server.files["youtube2019-train.zip"] = make_zip({"train/JPEGImages/v1/00000.jpg": frame.getvalue(),
                                                      "train/Annotations/v1/00000.png": mask.getvalue(),
                                                      "train/meta.json": b"{}"})
    server.files["youtube2019-valid.zip"] = make_zip({"valid/JPEGImages/v2/00000.jpg": b"j",
                                                      "valid/Annotations/v2/00000.png": b"p"})
    server.files["youtube2019-valid-all-frames.zip"] = make_zip({"valid_all_frames/JPEGImages/v2/00000.jpg": b"j"})
    monkeypatch.setenv(transfer.BASE_URL_ENV, server.base_url)
    args = ["youtube2019", "--root", str(tmp_path), "--yes", "--workers", "1"]
    assert download_datasets.main(args) == 0
    with Image.open(tmp_path / "YouTube/train_480p/JPEGImages/v1/00000.jpg") as image:
        assert image.size == (640, 480)
    with Image.open(tmp_path / "YouTube/train_480p/Annotations/v1/00000.png") as image:
        assert image.mode == "P" and image.size == (640, 480)
    assert (tmp_path / "YouTube/all_frames/valid_all_frames/JPEGImages/v2/00000.jpg").read_bytes() == b"j"
    assert (tmp_path / "YouTube/.complete-train_480p").exists()
    assert download_datasets.main(args) == 0
    assert len(server.requests) == 3


def bl30k_segment(letter):
    return make_tar([(f"BL30K/JPEGImages/video_{letter}/00000.jpg", "file", letter.encode()),
                     (f"BL30K/Annotations/video_{letter}/00000.png", "file", letter.upper().encode())])


def test_download_bl30k_merges_six_segments_then_skips(server, tmp_path, monkeypatch):
    for letter in "abcdef":
        server.files[f"BL30K_{letter}.tar"] = bl30k_segment(letter)
    free = []
    monkeypatch.setattr(command_line.shutil, "disk_usage",
                        lambda path: free.append(path) or DiskUsage(10**13, 0, 10**13))
    args = ["--root", str(tmp_path), "--yes", "--base_url", server.base_url]
    assert download_bl30k.main(args) == 0
    assert len(free) == 6  # one free-space check per segment
    assert sorted(os.listdir(tmp_path / "BL30K/JPEGImages")) == [f"video_{x}" for x in "abcdef"]
    assert (tmp_path / "BL30K/Annotations/video_c/00000.png").read_bytes() == b"C"
    assert [name for name in os.listdir(tmp_path / "BL30K") if name.endswith(".tar")] == []
    assert download_bl30k.main(args) == 0
    assert len(server.requests) == 6


def test_download_bl30k_stops_when_space_is_short(server, tmp_path, monkeypatch, capsys):
    server.files["BL30K_a.tar"] = bl30k_segment("a")
    monkeypatch.setattr(command_line.shutil, "disk_usage", lambda path: DiskUsage(10**12, 9 * 10**11, 10**11))
    code = download_bl30k.main(["--root", str(tmp_path), "--yes", "--base_url", server.base_url])
    err = capsys.readouterr().err
    assert code == 1 and "not enough free space for BL30K_a.tar" in err and "230.0 GB needed" in err
    assert server.requests == []


def test_download_model_verifies_checksum(server, tmp_path, capsys):
    weights = os.urandom(4096)
    server.files["imsfr.pth"] = weights
    sha = hashlib.sha256(weights).hexdigest()
    args = ["--url", server.url("imsfr.pth"), "--sha256", sha, "--dir", str(tmp_path)]
    assert download_model.main(args) == 0
    assert (tmp_path / "imsfr.pth").read_bytes() == weights
    assert download_model.main(args) == 0
    assert len(server.requests) == 1
    wrong = ["--url", server.url("imsfr.pth"), "--sha256", "f" * 64, "--dir", str(tmp_path), "--name", "other.pth"]
    capsys.readouterr()
    assert download_model.main(wrong) == 1
    err = capsys.readouterr().err
    assert "sha256 checksum mismatch" in err and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["imsfr.pth"]


def test_download_model_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit):
        download_model.main(["--url", "http://127.0.0.1/x.pth", "--sha256", "1234"])
    assert "64 hexadecimal digits" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        download_model.main(["--url", "https://drive.google.com/uc?id=abc", "--sha256", "a" * 64])
    assert "pass --name" in capsys.readouterr().err
