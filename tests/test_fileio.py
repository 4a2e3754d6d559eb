import os

import pytest

from util.fileio import atomic_open, atomic_write_text


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path):
    path = tmp_path / "sub" / "table.csv"
    atomic_write_text(path, "a,b\n")
    assert path.read_text() == "a,b\n"
    umask = os.umask(0)
    os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o666 & ~umask


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "weights.pth"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "wb") as f:
            f.write(b"partial")
            raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["weights.pth"]
