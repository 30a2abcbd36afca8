"""Resampling folded into the discriminator's convolutions: the same function, fewer operations.

A 3x3 conv followed by 2x2 average pooling is one 4x4 conv of stride 2, and nearest x2
upsampling followed by a 3x3 conv is one 4x4 transposed conv of stride 2; both do 2.25x fewer
multiply-adds. 1x1 shortcut convs commute with pooling and nearest upsampling, so they run at
the low resolution (4x fewer). The spectral-normalised weight is read once per forward, as in
the plain block, so the power iterations and the parameters (names, shapes, state dict) are
unchanged; only rounding differs. Below MIN_FUSED_PIXELS the plain ops run: there the weights
are large and the images small.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# Below this many low-resolution pixels per image (height x width) a block keeps the plain convs:
# building the 4x4 kernel costs a few passes over the weight, which only pays where the weight
# is applied at many positions (high resolution, small weights). Measured on CPU (benchmarks/RESULTS.md).
# Per image, not per batch: a data-parallel split of the batch must not change what is computed.
MIN_FUSED_PIXELS = 512


def box_sum_kernel(w: Tensor) -> Tensor:
    """(O, I, 3, 3) -> (O, I, 4, 4): the 3x3 kernel summed at the four offsets of a 2x2 window,
    built separably (rows, then columns) from slices and two additions."""
    w = torch.cat([w[..., :1], w[..., :-1] + w[..., 1:], w[..., -1:]], dim=-1)
    return torch.cat([w[..., :1, :], w[..., :-1, :] + w[..., 1:, :], w[..., -1:, :]], dim=-2)


def conv3x3_then_avg_pool(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """avg_pool2d(conv(x), 2) as one 4x4 stride-2 conv (the box-summed kernel / 4)."""
    w = conv.weight  # read once: one spectral-norm power iteration, as in the plain block
    if x.shape[-2] * x.shape[-1] < 4 * MIN_FUSED_PIXELS:
        return F.avg_pool2d(F.conv2d(x, w, conv.bias, padding=1), 2)
    return F.conv2d(x, box_sum_kernel(w) * 0.25, conv.bias, stride=2, padding=1)


def nearest_up_then_conv3x3(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """conv(interpolate(x, x2, nearest)) as one 4x4 stride-2 transposed conv: each output
    pixel's 3x3 window covers 2x2 input pixels, whose taps are the box-summed (flipped) kernel."""
    w = conv.weight
    if x.shape[-2] * x.shape[-1] < MIN_FUSED_PIXELS:
        return F.conv2d(_up2(x), w, conv.bias, padding=1)
    k = box_sum_kernel(w.flip(-2, -1)).transpose(0, 1)
    return F.conv_transpose2d(x, k, conv.bias, stride=2, padding=1)


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
