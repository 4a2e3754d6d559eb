"""Winograd convolution F(4x4, 3x3) (Lavin and Gray, 2016): the arithmetic, used by the
plans of inference_core/winograd.py.

A 3x3 convolution (stride 1, padding 1) computed tile by tile: every 4x4 block of
outputs is A^T [ (G g G^T) . (B^T d B) ] A, where d is the 6x6 input tile, g the
3x3 kernel and "." the elementwise product summed over input channels: 36 matrix
products of (tiles x C) by (C x K), 2.25 multiply-adds per output and channel pair
instead of 9. The transforms are additions and a few scalings, done with torch's
elementwise operations on blocks of tile rows (about 4,096 output pixels). Rounding: within
13 float32 units (eps) of the sums' scale max(|w| * |x|), the direct convolution
1.4 (its transforms scale by up to 8; tests/test_winograd.py checks against float64).
"""
import math
import time

import torch

TILE = 4
# B^T, G, A^T of F(4x4, 3x3): 6x6 input tiles, 4x4 output tiles.
_BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
       [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
_G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
      [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
_AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def _nonzero(matrix):
    """Per row: [(coefficient, column)] of its nonzero entries."""
    return [[(float(c), j) for j, c in enumerate(row) if c != 0] for row in matrix]


_INPUT_TERMS, _OUTPUT_TERMS = _nonzero(_BT), _nonzero(_AT)


def transform_weight(weight, chunk_bytes=2**22):
    """(K, C, 3, 3) kernel -> (36, C, K) transformed kernel, computed in float64, for
    blocks of output channels whose float64 result takes about ``chunk_bytes`` (this
    bounds the transient memory; every value is a 3 x 3-term sum over one output
    channel's kernel, which blocks do not split: the same values in one block or many,
    tests/test_winograd.py)."""
    out_channels, channels = weight.shape[:2]
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    out = weight.new_empty(36, channels, out_channels)
    step = max(1, chunk_bytes // (36 * channels * 8))
    for k in range(0, out_channels, step):
        u = torch.einsum("pa,kcab,qb->pqck", g, weight[k:k + step].detach().double(), g)
        out[:, :, k:k + step].view(6, 6, channels, -1).copy_(u)  # rounded to float32 as it is copied
    return out


def _combine(terms, inputs, out):
    """out = sum of coefficient * inputs[index] over ``terms``."""
    (c0, j0), rest = terms[0], terms[1:]
    if c0 == 1:
        out.copy_(inputs[j0])
    else:
        torch.mul(inputs[j0], c0, out=out)
    for c, j in rest:
        out.add_(inputs[j], alpha=c)
    return out


class Workspace:
    """Scratch memory that every Winograd call of a plan reuses, grown to the largest call's
    need and kept (``release`` frees it). Why: block buffers allocated at every call (tens
    of MiB) pay their page faults at every call, which also made the auto mode's timed
    calls unfair to Winograd. The buffers are carved at page-aligned offsets with the
    shapes (and so the strides) of separately allocated ones: the same products, the same
    numbers (tests/test_winograd.py)."""
    ALIGN = 1024  # elements: 4 KiB of float32

    def __init__(self):
        self.storage = None

    def nbytes(self):
        return 0 if self.storage is None else self.storage.nbytes

    def release(self):
        """Free it (the next call allocates what it needs)."""
        self.storage = None

    def take(self, like, *shapes):
        """Dense tensors of ``shapes`` with ``like``'s dtype and device, in one storage."""
        sizes = [-(-math.prod(shape) // self.ALIGN) * self.ALIGN for shape in shapes]
        need = sum(sizes)
        if self.storage is None or self.storage.numel() < need or self.storage.dtype != like.dtype \
                or self.storage.device != like.device:
            self.storage = None  # free the old one first
            self.storage = like.new_empty(need)
        out, offset = [], 0
        for shape, size in zip(shapes, sizes):
            out.append(self.storage[offset:offset + math.prod(shape)].view(shape))
            offset += size
        return out


def conv3x3(x, weight_t, bias=None, block_pixels=4096, deadline=None, workspace=None):
    """3x3 convolution, stride 1, padding 1, of x (N, C, H, W) with a kernel from
    ``transform_weight``; returns (N, K, H, W) in channels-last layout.
    ``block_pixels``: about how many output pixels each block of tile rows holds.
    ``deadline`` (a time.perf_counter() value, for timing trials): None once it is passed.
    ``workspace``: a ``Workspace`` for the block buffers (None: allocated for this call)."""
    batch, channels, height, width = x.shape
    m, size = TILE, TILE + 2
    out_channels = weight_t.shape[2]
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    padded_w = m * tiles_w + 2
    out = x.new_empty(batch, tiles_h, m, tiles_w, m, out_channels)
    rows = max(1, min(tiles_h, block_pixels // (batch * tiles_w * m * m)))
    shapes = [(batch, m * rows + 2, padded_w, channels), (batch, rows, padded_w, channels),
              (size, size, batch, rows, tiles_w, channels), (size * size, batch * rows * tiles_w, out_channels),
              (size, batch, rows, tiles_w, out_channels)]
    pad_buf, row_buf, v_buf, m_buf, r_buf = (workspace.take(x, *shapes) if workspace is not None
                                             else [x.new_empty(shape) for shape in shapes])
    for top in range(0, tiles_h, rows):
        n = min(rows, tiles_h - top)
        # The block's input rows, NHWC with a zero border of 1 (more at the bottom/right to
        # fill the last tiles); only the border is zeroed (F.pad would fill the whole buffer).
        block, first = pad_buf[:, :m * n + 2], m * top - 1  # block row 0 is input row ``first``
        low, high = max(first, 0), min(first + m * n + 2, height)
        block[:, low - first:high - first, 1:width + 1].copy_(x[:, :, low:high].permute(0, 2, 3, 1))
        for border in (block[:, :low - first], block[:, high - first:], block[:, :, :1], block[:, :, width + 1:]):
            border.zero_()
        tile_rows = [block[:, a:a + m * n:m] for a in range(size)]     # (N, n, Wp, C) each
        for p in range(size):
            if deadline is not None and time.perf_counter() > deadline:
                return None
            row = _combine(_INPUT_TERMS[p], tile_rows, row_buf[:, :n])  # B^T along rows, then columns
            tile_cols = [row[:, :, b:b + m * tiles_w:m] for b in range(size)]
            for q in range(size):
                _combine(_INPUT_TERMS[q], tile_cols, v_buf[p, q, :, :n])
        v = v_buf[:, :, :, :n].reshape(size * size, -1, channels)
        prod = torch.bmm(v, weight_t, out=m_buf[:, :v.shape[1]])
        prod = prod.view(size, size, batch, n, tiles_w, out_channels)
        for a in range(m):
            if deadline is not None and time.perf_counter() > deadline:
                return None
            r = _combine(_OUTPUT_TERMS[a], prod, r_buf[:, :, :n])       # A^T along rows, then columns
            for b in range(m):
                _combine(_OUTPUT_TERMS[b], r, out[:, top:top + n, a, :, b])
    y = out.view(batch, m * tiles_h, m * tiles_w, out_channels)[:, :height, :width]
    if bias is not None:
        # In place where nothing is cropped: no second output-sized buffer.
        y = y.add_(bias) if (height, width) == (m * tiles_h, m * tiles_w) else y + bias
    else:
        y = y.contiguous()
    return y.permute(0, 3, 1, 2)
