"""Spatially-adaptive normalisation (SPADE) and the SPADE residual block of the generator.

    out = BN(h) * (1 + gamma(l)) + beta(l)

with parameter-free batch norm (synchronised across processes by
`torch.nn.SyncBatchNorm.convert_sync_batchnorm` when training on several devices) and
gamma, beta predicted per pixel from a condition l. gamma and beta come from one fused
convolution with 2C outputs (first half gamma, second half beta): the same parameters as the
published pair `mlp_gamma`, `mlp_beta`, in one kernel launch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _sn


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    return _sn(module) if enabled else module


def resize_nearest(x: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """F.interpolate(x, size, mode="nearest"), as a strided view when `size` divides x's size.

    Nearest resizing reads source pixel floor(i * in / out); for an integer factor f that is
    pixel i * f, so the result is x[..., ::f, ::f], without the copy (the timings, with the
    condition resized once per block, are in benchmarks/RESULTS.md)."""
    (h, w), (oh, ow) = x.shape[-2:], tuple(size)
    if (h, w) == (oh, ow):
        return x
    if oh <= h and ow <= w and h % oh == 0 and w % ow == 0:
        return x[..., :: h // oh, :: w // ow]
    return F.interpolate(x, size=(oh, ow), mode="nearest")


class SPADE(nn.Module):
    """`hidden` > 0: OASIS form (shared conv + ReLU before gamma/beta); 0: DP-GAN form, where
    the condition is already a learned 2 x pyramid_width feature."""

    def __init__(self, channels: int, cond_channels: int, hidden: int = 0, kernel_size: int = 3) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.channels = channels
        self.norm = nn.BatchNorm2d(channels, affine=False)
        if hidden > 0:
            self.shared: nn.Module | None = nn.Sequential(
                nn.Conv2d(cond_channels, hidden, kernel_size, padding=pad), nn.ReLU()
            )
            src = hidden
        else:
            self.shared = None
            src = cond_channels
        self.gamma_beta = nn.Conv2d(src, 2 * channels, kernel_size, padding=pad)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        cond = resize_nearest(cond, h.shape[-2:])
        if self.shared is not None:
            cond = self.shared(cond)
        gamma, beta = self.gamma_beta(cond).chunk(2, dim=1)
        return self.norm(h) * (1.0 + gamma) + beta


class SPADEResBlock(nn.Module):
    """Two 3x3 convs, each after SPADE + LeakyReLU(0.2); a learned 1x1 shortcut (with its own
    SPADE) when the channel count changes."""

    def __init__(
        self, fin: int, fout: int, cond_channels: int, *, hidden: int = 0, spectral_norm: bool = True
    ) -> None:
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.norm_0 = SPADE(fin, cond_channels, hidden)
        self.conv_0 = maybe_sn(nn.Conv2d(fin, fmid, 3, padding=1), spectral_norm)
        self.norm_1 = SPADE(fmid, cond_channels, hidden)
        self.conv_1 = maybe_sn(nn.Conv2d(fmid, fout, 3, padding=1), spectral_norm)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, cond_channels, hidden)
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1, bias=False), spectral_norm)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        shortcut = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, cond), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, cond), 0.2))
        return shortcut + dx


def generator_channels(width: int, num_res_blocks: int) -> list[int]:
    """[16, 16, 16, 8, 4, 2, 1] x width for 6 blocks (published); fewer blocks drop the
    coarsest entries, more blocks add 16s."""
    mults = [16, 16, 16, 8, 4, 2, 1]
    n = num_res_blocks + 1
    mults = mults[-n:] if n <= len(mults) else [16] * (n - len(mults)) + mults
    return [m * width for m in mults]
