"""Winograd convolution F(m x m, 3 x 3) for CPU inference (Lavin and Gray, 2016).

A 3x3 convolution (stride 1, padding 1) computed tile by tile: every m x m block
of outputs is A^T [ (G g G^T) . (B^T d B) ] A, where d is the (m+2) x (m+2) input
tile, g the 3x3 kernel and "." the elementwise product summed over input
channels. The channel sums become (m+2)^2 matrix products of (tiles x C) by
(C x K): 16/4 = 4 multiply-adds per output and channel pair for m = 2, 36/16 =
2.25 for m = 4, instead of 9. The transforms are additions and a few scalings,
done here with torch's elementwise operations on blocks of tile rows that stay in
cache. Rounding, in float32 units (eps) of the sums' scale max(|w| * |x|),
measured: m = 2 (coefficients 0, +-1, +-1/2) within 0.6, as accurate as the
direct convolution (1.4); m = 4 within 13, as its transforms scale by up to 8
(about 1e-5 of the output's range). ``tests/test_winograd.py`` checks both
against float64.

``use_winograd`` turns the eligible 3x3 convolutions of a module into
``WinogradConv2d``: the same parameters and state dict, and the Winograd path
only in inference (no autograd) on the CPU in float32, where PyTorch's oneDNN
runs the direct algorithm. Training, autocast and CUDA (whose cuDNN picks its
own algorithms) run ``nn.Conv2d`` unchanged. scripts/benchmark_inference.py
measures it; README, "Speed".
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# Transform matrices (B^T, G, A^T) for output tiles of m x m, tile size m + 2.
_MATRICES = {
    2: ([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]]),
    4: ([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]),
}


def _nonzero(matrix):
    """Per row: [(coefficient, column)] of its nonzero entries."""
    return [[(float(c), j) for j, c in enumerate(row) if c != 0] for row in matrix]


_TERMS = {m: (_nonzero(bt), _nonzero(at)) for m, (bt, _, at) in _MATRICES.items()}


def transform_weight(weight, m):
    """(K, C, 3, 3) kernel -> ((m+2)^2, C, K) transformed kernel, computed in float64."""
    g = torch.tensor(_MATRICES[m][1], dtype=torch.float64, device=weight.device)
    u = torch.einsum("pa,kcab,qb->pqck", g, weight.detach().double(), g)
    return u.reshape(-1, weight.shape[1], weight.shape[0]).to(weight.dtype).contiguous()


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


def conv3x3(x, weight_t, bias=None, m=4, block_pixels=8192):
    """3x3 convolution, stride 1, padding 1, of x (N, C, H, W) with a kernel from
    ``transform_weight(weight, m)``; returns (N, K, H, W) in channels-last layout.
    ``block_pixels``: about how many output pixels each block of tile rows holds."""
    batch, channels, height, width = x.shape
    size = m + 2
    out_channels = weight_t.shape[2]
    input_terms, output_terms = _TERMS[m]
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    padded_w = m * tiles_w + 2
    # NHWC with a zero border of 1 (more at the bottom/right to fill the last tiles);
    # only the border is zeroed (F.pad would fill the whole buffer first).
    xp = x.new_empty(batch, m * tiles_h + 2, padded_w, channels)
    xp[:, 1:height + 1, 1:width + 1].copy_(x.permute(0, 2, 3, 1))
    for border in (xp[:, :1], xp[:, height + 1:], xp[:, :, :1], xp[:, :, width + 1:]):
        border.zero_()
    out = x.new_empty(batch, tiles_h, m, tiles_w, m, out_channels)
    rows = max(1, min(tiles_h, block_pixels // (batch * tiles_w * m * m)))
    row_buf = x.new_empty(batch, rows, padded_w, channels)
    v_buf = x.new_empty(size, size, batch, rows, tiles_w, channels)
    m_buf = x.new_empty(size * size, batch * rows * tiles_w, out_channels)
    r_buf = x.new_empty(size, batch, rows, tiles_w, out_channels)
    for top in range(0, tiles_h, rows):
        n = min(rows, tiles_h - top)
        block = xp[:, m * top:m * (top + n) + 2]
        tile_rows = [block[:, a:a + m * n:m] for a in range(size)]     # (N, n, Wp, C) each
        for p in range(size):
            row = _combine(input_terms[p], tile_rows, row_buf[:, :n])   # B^T along rows, then columns
            tile_cols = [row[:, :, b:b + m * tiles_w:m] for b in range(size)]
            for q in range(size):
                _combine(input_terms[q], tile_cols, v_buf[p, q, :, :n])
        v = v_buf[:, :, :, :n].reshape(size * size, -1, channels)
        prod = torch.bmm(v, weight_t, out=m_buf[:, :v.shape[1]])
        prod = prod.view(size, size, batch, n, tiles_w, out_channels)
        for a in range(m):
            r = _combine(output_terms[a], prod, r_buf[:, :, :n])        # A^T along rows, then columns
            for b in range(m):
                _combine(output_terms[b], r, out[:, top:top + n, a, :, b])
    y = out.view(batch, m * tiles_h, m * tiles_w, out_channels)[:, :height, :width]
    if bias is not None:
        y = y + bias
    else:
        y = y.contiguous()
    return y.permute(0, 3, 1, 2)


# Measured on a 2-core AVX-512 CPU (README, "Speed"): with 256 or more input and
# output channels and maps of 256 pixels or more, F(4x4, 3x3) takes 0.35-0.65 of
# the direct convolution's time; with 64 channels it is slower.
MIN_CHANNELS = 256
MIN_PIXELS = 256


class WinogradConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (3x3, stride 1, padding 1) computed by ``conv3x3`` in CPU
    float32 inference. Made by ``use_winograd``, which sets ``tile`` and ``min_pixels``."""
    tile = 4
    min_pixels = MIN_PIXELS

    def applies(self, x):
        return (x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_grad_enabled()
                and not torch.is_autocast_enabled("cpu") and x.shape[0] > 0
                and x.shape[-2] * x.shape[-1] >= self.min_pixels)

    def transformed_weight(self, start=0, stop=None):
        """The transformed kernel of input channels start:stop, cached until the weight changes."""
        stop = self.in_channels if stop is None else stop
        cache = self.__dict__.setdefault("_winograd_cache", {})
        weight = self.weight
        version = (weight._version, weight.data_ptr(), weight.dtype, weight.device, self.tile)
        entry = cache.get((start, stop))
        if entry is None or entry[0] != version:
            entry = cache[(start, stop)] = (version, transform_weight(weight[:, start:stop], self.tile))
        return entry[1]

    def forward(self, x):
        if self.applies(x):
            return conv3x3(x, self.transformed_weight(), self.bias, self.tile)
        return super().forward(x)

    def forward_input_part(self, x, start, stop=None, bias=None):
        """This convolution over its input channels start:stop only, plus ``bias``: one
        term of a convolution split by input channels (model/decoder.py, conv_input_part)."""
        if self.applies(x):
            return conv3x3(x, self.transformed_weight(start, stop), bias, self.tile)
        return F.conv2d(x, self.weight[:, start:stop], bias, padding=self.padding)


def eligible(conv):
    return (type(conv) in (nn.Conv2d, WinogradConv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def use_winograd(module, enabled=True, tile=4, min_channels=MIN_CHANNELS, min_pixels=MIN_PIXELS):
    """Turn the eligible 3x3 convolutions of ``module`` with at least ``min_channels``
    input and output channels into ``WinogradConv2d`` (``enabled=False``: back to
    ``nn.Conv2d``), in place. Returns how many convolutions were changed."""
    if tile not in _MATRICES:
        raise ValueError(f"Winograd tile must be one of {sorted(_MATRICES)}, got {tile}")
    changed = 0
    for conv in module.modules():
        if not eligible(conv):
            continue
        if enabled and min(conv.in_channels, conv.out_channels) >= min_channels:
            conv.__class__ = WinogradConv2d
            conv.tile, conv.min_pixels = tile, min_pixels
            conv.__dict__.pop("_winograd_cache", None)
            changed += 1
        elif not enabled and type(conv) is WinogradConv2d:
            conv.__class__ = nn.Conv2d
            for name in ("tile", "min_pixels", "_winograd_cache"):
                conv.__dict__.pop(name, None)
            changed += 1
    return changed
