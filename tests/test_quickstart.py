"""A shortened quick start: data, training, checkpoint, inference, J&F table, overlay."""
import csv
import os

from PIL import Image

from scripts import quickstart
from tests.helpers_capture import progress_to_current_streams


def test_short_quickstart_produces_table_and_overlay(tmp_path, capsys):
    out = tmp_path / "qs"
    with progress_to_current_streams():
        code = quickstart.main(["--output", str(out), "--iterations", "2", "--batch_size", "2", "--crop_size", "64",
                                "--size", "64", "96", "--frames", "5", "--train_videos", "3", "--eval_videos", "2",
                                "--num_workers", "0", "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "J&F-Mean" in printed and "Held-out J&F-Mean" in printed
    # Synthetic videos are not in the reference's list: the quick start trains with --no_subset
    # (DAVIS's own ImageSets/2017/train.txt).
    assert "DAVIS: 3 video(s) kept, 0 skipped (not listed in " in printed
    assert os.path.isfile(out / "saves" / "quickstart_2.pth")
    with open(out / "results" / "global_results-val.csv") as f:
        row = next(csv.DictReader(f))
    assert 0.0 <= float(row["J&F-Mean"]) <= 1.0
    overlays = list(out.glob("overlay_*.gif"))
    assert len(overlays) == 1
    with Image.open(overlays[0]) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
