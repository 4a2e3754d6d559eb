"""Stage-0 augmentations as the reference: thin-plate-spline warp (p = 0.33 per
frame), soft masks from the bicubic per-frame affine, interpolation modes."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import dataset.static_dataset as static_dataset
from dataset.seeding import item_rng
from dataset.static_dataset import StaticPseudoVideoDataset
from dataset.transforms import BICUBIC, NEAREST, random_affine, random_tps, tps_maps

CROP = 32


def write_pair(folder, name, size=(40, 48)):
    os.makedirs(folder, exist_ok=True)
    mask = np.zeros(size, np.uint8)
    mask[10:30, 12:36] = 255
    Image.fromarray(np.repeat(mask[..., None], 3, axis=2)).save(os.path.join(folder, name + ".jpg"))
    Image.fromarray(mask).save(os.path.join(folder, name + ".png"))


def test_tps_maps_move_control_points_exactly():
    # Points on exact pixel positions of a 50 x 80 image: output pixel dst_i samples input src_i.
    dst = np.array([[0.25, 0.2], [0.75, 0.2], [0.5, 0.8], [0.125, 0.6], [0.875, 0.6]])
    src = dst + np.array([[0.025, 0.0], [0.0, 0.04], [-0.0125, 0.02], [0.0, 0.0], [0.05, -0.02]])
    map_x, map_y = tps_maps(src, dst, 50, 80)
    assert map_x.shape == map_y.shape == (50, 80) and map_x.dtype == np.float32
    for (x, y), (sx, sy) in zip(dst, src):
        row, col = int(round(y * 50)), int(round(x * 80))
        assert map_x[row, col] == pytest.approx(sx * 80, abs=1e-3)
        assert map_y[row, col] == pytest.approx(sy * 50, abs=1e-3)
    # No displacement: the identity.
    map_x, map_y = tps_maps(dst, dst, 50, 80)
    assert np.abs(map_x - np.arange(80)[None]).max() < 1e-3 and np.abs(map_y - np.arange(50)[:, None]).max() < 1e-3


def test_tps_warp_image_bilinear_mask_nearest():
    rng = np.random.default_rng(3)
    warp = random_tps(rng, (64, 64), num_points=12, sigma=0.02)
    assert warp.src.shape == (12, 2)
    assert len(set(warp.src[:, 0])) == 12 and len(set(warp.src[:, 1])) == 12  # distinct columns and rows
    assert np.all(np.isin(np.round(warp.src * 64, 6), np.arange(64)))         # pixel index / size
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 200
    image = np.dstack([np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))] * 3)
    warped_mask = np.array(warp.mask(Image.fromarray(mask)))
    warped_image = np.array(warp.image(Image.fromarray(image)))
    assert set(np.unique(warped_mask)) <= {0, 200} and not np.array_equal(warped_mask, mask)
    assert abs(int((warped_mask > 0).sum()) - 32 * 32) < 0.2 * 32 * 32
    assert len(np.unique(warped_image)) > len(np.unique(image))                # bilinear: new values
    with pytest.raises(ValueError, match="made for 64x64 images, got 10x10"):
        warp.mask(Image.new("L", (10, 10)))
    # 12 points need 12 distinct rows and columns.
    with pytest.raises(ValueError, match="12 control points"):
        random_tps(rng, (8, 64))
    # The displacement is N(0, 0.02^2) in normalised coordinates.
    moves = np.concatenate([(w.dst - w.src).ravel() for w in (random_tps(rng, (64, 64)) for _ in range(200))])
    assert abs(moves.mean()) < 0.002 and 0.018 < moves.std() < 0.022


def test_interpolation_modes_of_an_affine():
    two_colours = np.zeros((40, 40, 3), np.uint8)
    two_colours[:, 20:] = (200, 100, 50)
    image = Image.fromarray(two_colours)
    zoom = random_affine(item_rng(0, 0, 0), 0, scale=(1.2, 1.4), image_mode=NEAREST)
    assert {tuple(c) for c in np.array(zoom.image(image)).reshape(-1, 3)} <= {(0, 0, 0), (200, 100, 50)}
    bicubic = random_affine(item_rng(0, 0, 0), 20, shear=10)
    assert len({tuple(c) for c in np.array(bicubic.image(image)).reshape(-1, 3)}) > 3
    mask = Image.fromarray((two_colours[..., 0] > 0).astype(np.uint8) * 255)
    soft = np.array(random_affine(item_rng(0, 0, 0), 20, shear=10, mask_mode=BICUBIC).mask(mask))
    assert ((soft > 0) & (soft < 255)).any()                                   # a soft mask
    hard = np.array(random_affine(item_rng(0, 0, 0), 20, shear=10).mask(mask))
    assert set(np.unique(hard)) <= {0, 255}


def test_tps_in_about_a_third_of_frames_and_soft_class_target(tmp_path, monkeypatch):
    write_pair(tmp_path / "imgs", "a")
    dataset = StaticPseudoVideoDataset([(str(tmp_path / "imgs"), 100)], crop_size=CROP, seed=0)
    calls = []
    real_tps = static_dataset.random_tps

    def counting_tps(*args, **kwargs):
        calls.append(args[1:])
        return real_tps(*args, **kwargs)

    monkeypatch.setattr(static_dataset, "random_tps", counting_tps)
    flags, soft_frames = [], 0
    for index in range(len(dataset)):
        sample = dataset[index]
        flags += sample["info"]["tps"]
        gt = sample["gt"][:, 0]
        assert torch.equal(sample["cls_gt"], (gt > 0.5).long())
        assert 0 <= gt.min() and gt.max() <= 1
        soft_frames += int(((gt > 0) & (gt < 1)).any(dim=(1, 2)).sum())
    assert len(flags) == 300 and len(calls) == sum(flags)
    assert all(call == ((CROP, CROP), 12, 0.02) for call in calls)
    assert 0.27 < sum(flags) / 300 < 0.39          # p = 0.33 per frame (seeded, so exact: see below)
    assert sum(flags) == 108
    assert soft_frames > 250                       # the bicubic warp leaves soft edges in most frames
    # The class target is the soft mask thresholded at 0.5, not the mask's support.
    sample = dataset[0]
    gt = sample["gt"][:, 0]
    assert ((gt > 0) & (gt <= 0.5)).any() and (sample["cls_gt"].bool() != (gt > 0)).any()


def test_soft_input_masks_keep_their_gray_values(tmp_path):
    folder = tmp_path / "soft"
    write_pair(folder, "a")
    gray = np.zeros((40, 48), np.uint8)
    gray[10:30, 12:36] = 60                # well below 0.5 (bicubic overshoots a little): no class-target pixel
    Image.fromarray(gray).save(folder / "a.png")
    sample = StaticPseudoVideoDataset([str(folder)], crop_size=CROP, seed=0)[0]
    assert not sample["cls_gt"].any() and 0.2 < sample["gt"].max() < 0.35
