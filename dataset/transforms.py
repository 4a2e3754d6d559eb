"""Normalisation and the training augmentations, with explicitly drawn parameters.

Each ``random_*`` function draws its parameters from a given numpy Generator
and returns a small operation object; the same object is then applied to a
frame and its mask (by default bicubic + ImageNet-mean fill for images,
nearest + 0 fill for masks; an operation can name other modes, as the
reference's static stage does). Drawing parameters ourselves instead of using
torchvision's random transforms keeps the global torch RNG untouched and a
sample reproducible from its own stream (dataset/seeding.py).
"""
import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from util.config import IMAGENET_MEAN, IMAGENET_STD

IMAGE_FILL = tuple(int(round(255 * m)) for m in IMAGENET_MEAN)
BICUBIC, BILINEAR, NEAREST = InterpolationMode.BICUBIC, InterpolationMode.BILINEAR, InterpolationMode.NEAREST


def to_normalised_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float32, ImageNet-normalised."""
    return TF.normalize(TF.to_tensor(image), IMAGENET_MEAN, IMAGENET_STD)


# ---------------------------------------------------------------- geometry
class _Resampling:
    """Geometry ``_apply(img, how)`` run with the image settings (``image_mode``,
    ImageNet-mean fill) or the mask settings (``mask_mode``, 0 fill)."""
    image_mode = BICUBIC
    mask_mode = NEAREST

    def image(self, img):
        return self._apply(img, dict(interpolation=self.image_mode, fill=list(IMAGE_FILL)))

    def mask(self, img):
        return self._apply(img, dict(interpolation=self.mask_mode, fill=[0]))


@dataclass(frozen=True)
class Affine(_Resampling):
    angle: float
    scale: float
    shear: tuple
    image_mode: InterpolationMode = BICUBIC
    mask_mode: InterpolationMode = NEAREST

    def _apply(self, img, how):
        if self.angle == 0 and self.scale == 1 and self.shear == (0.0, 0.0):
            return img
        return TF.affine(img, angle=self.angle, translate=[0, 0], scale=self.scale,
                         shear=list(self.shear), **how)


@dataclass(frozen=True)
class Flip:
    enabled: bool

    def image(self, img):
        return TF.hflip(img) if self.enabled else img

    mask = image


@dataclass(frozen=True)
class ResizedCrop(_Resampling):
    """Crop the box (top, left, height, width), then resize it to ``size`` x ``size``."""
    top: int
    left: int
    height: int
    width: int
    size: int

    def _apply(self, img, how):
        return TF.resized_crop(img, self.top, self.left, self.height, self.width,
                               [self.size, self.size], interpolation=how["interpolation"])


@dataclass(frozen=True)
class ResizeCrop(_Resampling):
    """Resize to ``resized_hw`` (shorter side = ``size``), then crop ``size`` x ``size``."""
    resized_hw: tuple
    top: int
    left: int
    size: int

    def _apply(self, img, how):
        img = TF.resize(img, list(self.resized_hw), interpolation=how["interpolation"])
        return TF.crop(img, self.top, self.left, self.size, self.size)


def random_affine(rng, degrees, scale=(1.0, 1.0), shear=0.0, image_mode=BICUBIC, mask_mode=NEAREST) -> Affine:
    """Angle in [-degrees, degrees], scale in ``scale``, x-shear in [-shear, shear]
    (torchvision's RandomAffine with a single shear value)."""
    return Affine(angle=float(rng.uniform(-degrees, degrees)) if degrees else 0.0,
                  scale=float(rng.uniform(*scale)) if scale[0] != scale[1] else float(scale[0]),
                  shear=(float(rng.uniform(-shear, shear)) if shear else 0.0, 0.0),
                  image_mode=image_mode, mask_mode=mask_mode)


def random_flip(rng, p=0.5) -> Flip:
    return Flip(bool(rng.random() < p))


def random_resized_crop(rng, in_hw, size, scale, ratio=(3 / 4, 4 / 3)) -> ResizedCrop:
    """A box covering a ``scale`` fraction of the area with aspect ``ratio`` (10 tries,
    then the largest central box within the ratio range), as torchvision does."""
    height, width = in_hw
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return ResizedCrop(int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)),
                               h, w, size)
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        w, h = width, height
    return ResizedCrop((height - h) // 2, (width - w) // 2, h, w, size)


def random_resize_crop(rng, in_hw, size) -> ResizeCrop:
    """Resize the shorter side to ``size`` (aspect kept), then a random ``size`` square."""
    height, width = in_hw
    if height <= width:
        resized = (size, max(size, int(size * width / height)))
    else:
        resized = (max(size, int(size * height / width)), size)
    return ResizeCrop(resized, int(rng.integers(0, resized[0] - size + 1)),
                      int(rng.integers(0, resized[1] - size + 1)), size)


# ---------------------------------------------------------------- thin-plate spline
def _tps_kernel(points, centres):
    """U(r) = r^2 log r between (P, 2) points and (C, 2) centres (U(0) = 0)."""
    squared = (points[:, None, 0] - centres[None, :, 0]) ** 2 + (points[:, None, 1] - centres[None, :, 1]) ** 2
    return 0.5 * squared * np.log(np.maximum(squared, 1e-300))  # r^2 log r = s log(s) / 2, 0 at s = 0


def tps_maps(src, dst, height, width):
    """``cv2.remap`` maps (map_x, map_y), float32 (H, W), of the thin-plate spline
    warp that moves the control points ``src`` to ``dst``.

    Points are (N, 2) arrays of (x, y) in normalised coordinates (pixel index
    divided by the width / height). The spline f with f(dst_i) = src_i
    (affine part plus radial r^2 log r terms, exact at the points) is
    evaluated at every output pixel: output pixel p samples the input at f(p).
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    n = len(dst)
    system = np.zeros((n + 3, n + 3))
    system[:n, :n] = _tps_kernel(dst, dst)
    system[:n, n] = system[n, :n] = 1.0
    system[:n, n + 1:] = dst
    system[n + 1:, :n] = dst.T
    rhs = np.zeros((n + 3, 2))
    rhs[:n] = src - dst  # the displacement, interpolated over the image
    try:
        coefficients = np.linalg.solve(system, rhs)
    except np.linalg.LinAlgError:  # degenerate points (e.g. all on one line)
        coefficients = np.linalg.lstsq(system, rhs, rcond=None)[0]
    ys, xs = np.mgrid[0:height, 0:width]
    grid = np.stack([xs.ravel() / width, ys.ravel() / height], axis=1)
    moved = grid + _tps_kernel(grid, dst) @ coefficients[:n] + coefficients[n] + grid @ coefficients[n + 1:]
    map_x = (moved[:, 0] * width).reshape(height, width).astype(np.float32)
    map_y = (moved[:, 1] * height).reshape(height, width).astype(np.float32)
    return map_x, map_y


@dataclass(frozen=True, eq=False)
class ThinPlateSpline:
    """A TPS warp given by its remap grids: the image is sampled bilinearly, the
    mask by nearest neighbour, both with 0 outside (OpenCV's default border,
    as in the reference)."""
    src: np.ndarray
    dst: np.ndarray
    map_x: np.ndarray = field(repr=False)
    map_y: np.ndarray = field(repr=False)

    def _remap(self, img, mode):
        array = np.asarray(img)
        if array.shape[:2] != self.map_x.shape:
            raise ValueError(f"TPS warp made for {self.map_x.shape[1]}x{self.map_x.shape[0]} images, "
                             f"got {array.shape[1]}x{array.shape[0]}")
        out = cv2.remap(array, self.map_x, self.map_y, mode, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return Image.fromarray(out, mode=img.mode)

    def image(self, img):
        return self._remap(img, cv2.INTER_LINEAR)

    def mask(self, img):
        return self._remap(img, cv2.INTER_NEAREST)


def random_tps(rng, hw, num_points=12, sigma=0.02) -> ThinPlateSpline:
    """The reference's random TPS warp of an ``hw`` image: ``num_points`` control
    points on distinct rows and distinct columns (normalised by the size), each
    moved by N(0, sigma^2) in x and y."""
    height, width = hw
    if num_points > min(height, width):
        raise ValueError(f"{num_points} control points need an image of at least that many rows and columns, "
                         f"got {width}x{height}")
    rows = rng.choice(height, size=num_points, replace=False) / height
    cols = rng.choice(width, size=num_points, replace=False) / width
    src = np.stack([cols, rows], axis=1)
    dst = src + rng.normal(0.0, sigma, size=src.shape)
    return ThinPlateSpline(src, dst, *tps_maps(src, dst, height, width))


def apply_geometry(ops, image, mask):
    """Apply geometric ``ops`` in order to an image and its mask alike."""
    for op in ops:
        image, mask = op.image(image), op.mask(mask)
    return image, mask


# ---------------------------------------------------------------- colour
_ADJUST = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


@dataclass(frozen=True)
class ColourJitter:
    """Brightness, contrast, saturation, hue adjustments applied in ``order``."""
    factors: tuple  # (brightness, contrast, saturation, hue); None = unchanged
    order: tuple

    def image(self, img):
        for k in self.order:
            if self.factors[k] is not None:
                img = _ADJUST[k](img, self.factors[k])
        return img


@dataclass(frozen=True)
class Grayscale:
    enabled: bool

    def image(self, img):
        return TF.rgb_to_grayscale(img, num_output_channels=3) if self.enabled else img


def random_colour_jitter(rng, brightness, contrast, saturation, hue=0.0) -> ColourJitter:
    """Factors in [max(0, 1-x), 1+x] (hue in [-hue, hue]) in a random order, like
    torchvision's ColorJitter."""
    def factor(x):
        return float(rng.uniform(max(0.0, 1 - x), 1 + x)) if x else None

    factors = (factor(brightness), factor(contrast), factor(saturation),
               float(rng.uniform(-hue, hue)) if hue else None)
    return ColourJitter(factors, tuple(int(k) for k in rng.permutation(4)))


def random_grayscale(rng, p) -> Grayscale:
    return Grayscale(bool(rng.random() < p))
