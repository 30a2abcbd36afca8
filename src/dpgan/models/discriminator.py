"""The scale-enhancement discriminator: OASIS's U-Net that segments every pixel into N + 1
classes (channel 0 = "fake"), plus DP-GAN's patch heads D_p^i on intermediate features psi^i.

Which features carry patch heads is decided when the model is built (neither = the OASIS
discriminator exactly):
  encoder_heads: encoder outputs at 1/16 and at the coarsest scale (1/64 with 6 blocks): the
                 published choice;
  decoder_heads: the two coarsest decoder outputs (1/32 and 1/16 with 6 blocks). The paper's
                 ablation uses decoder heads but does not say where; this is our choice.
Features for the feature-matching loss: the encoder outputs that feed skip connections and
the decoder outputs after the first block (phi^i of the paper; 5 each with 6 blocks).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpgan.models.fused_resampling import conv3x3_then_avg_pool, nearest_up_then_conv3x3
from dpgan.models.spade import maybe_sn


class DiscriminatorOutput(NamedTuple):
    logits: Tensor  # (B, N+1, H, W); channel 0 is "fake", channel c+1 is class c
    patch_scores: list[Tensor]  # one (B, 1, h, w) map per patch head: encoder heads first
    encoder_features: list[Tensor]
    decoder_features: list[Tensor]


def encoder_channels(width: int, num_res_blocks: int) -> list[int]:
    """[3, 2, 2, 4, 4, 8, 8] x width (published for 6 blocks: 3, 128, 128, 256, 256, 512, 512);
    deeper encoders continue at 8 x width, shallower ones stop early."""
    mults = [2, 2, 4, 4, 8, 8] + [8] * max(0, num_res_blocks - 6)
    return [3] + [m * width for m in mults[:num_res_blocks]]


class ResBlockD(nn.Module):
    """Residual block of the U-Net: 2 x (LeakyReLU, 3x3 conv); down = average pool after the
    convs, up = nearest x2 before them; 1x1 learned shortcut when channels change."""

    def __init__(self, fin: int, fout: int, *, up: bool, first: bool = False, spectral_norm: bool = True) -> None:
        super().__init__()
        self.up, self.first = up, first
        self.learned_shortcut = fin != fout
        self.conv1 = maybe_sn(nn.Conv2d(fin, fout, 3, padding=1), spectral_norm)
        self.conv2 = maybe_sn(nn.Conv2d(fout, fout, 3, padding=1), spectral_norm)
        if self.learned_shortcut:
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1), spectral_norm)

    def _resample(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="nearest") if self.up else F.avg_pool2d(x, 2)

    def forward(self, x: Tensor) -> Tensor:
        # shortcut: the first block pools before its 1x1 conv, the others after (cheaper, as published)
        s = x
        if self.up:
            s = self._resample(s)
        elif self.first:
            s = F.avg_pool2d(s, 2)
        if self.learned_shortcut:
            s = self.conv_s(s)
        if not self.up and not self.first:
            s = F.avg_pool2d(s, 2)
        dx = x if self.first else F.leaky_relu(x, 0.2)
        if self.up:
            dx = self._resample(dx)
        dx = self.conv2(F.leaky_relu(self.conv1(dx), 0.2))
        if not self.up:
            dx = F.avg_pool2d(dx, 2)
        return s + dx


class FusedResBlockD(ResBlockD):
    """`ResBlockD` with its resampling folded into the convolutions (dpgan/models/fused_resampling.py):
    the same parameters and function, 2.25x fewer multiply-adds in the resampling convs."""

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            s = F.interpolate(self.conv_s(x) if self.learned_shortcut else x, scale_factor=2.0, mode="nearest")
            dx = nearest_up_then_conv3x3(F.leaky_relu(x, 0.2), self.conv1)
            dx = self.conv2(F.leaky_relu(dx, 0.2))
            return s + dx
        s = F.avg_pool2d(x, 2)
        if self.learned_shortcut:
            s = self.conv_s(s)
        dx = self.conv1(x if self.first else F.leaky_relu(x, 0.2))
        return s + conv3x3_then_avg_pool(F.leaky_relu(dx, 0.2), self.conv2)


def patch_head(in_channels: int, width: int) -> nn.Sequential:
    """D_p^i: stride-2 conv, then 3 x (conv, BN, LeakyReLU), then a conv to one score per patch."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
    for _ in range(3):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.LeakyReLU(0.2)]
    layers.append(nn.Conv2d(width, 1, 3, padding=1))
    return nn.Sequential(*layers)


class UNetDiscriminator(nn.Module):
    def __init__(
        self,
        num_classes: int,
        *,
        width: int = 64,
        num_res_blocks: int = 6,
        encoder_heads: bool = True,
        decoder_heads: bool = False,
        heads_from_bottleneck: bool = False,
        spectral_norm: bool = True,
        fused_resampling: bool = False,
    ) -> None:
        """`fused_resampling`: blocks that fold their pooling and upsampling into the convolutions
        (FusedResBlockD; what training uses); the same parameters, state dict and function.
        `heads_from_bottleneck`: the encoder heads read the last block and the one two above it,
        instead of block 3 and the last (the same two for 6 blocks, the published depth)."""
        super().__init__()
        if num_res_blocks < 2:
            raise ValueError("the U-Net discriminator needs at least 2 residual blocks")
        self.num_classes = num_classes
        n = num_res_blocks
        ch = encoder_channels(width, n)
        sn = spectral_norm
        block = FusedResBlockD if fused_resampling else ResBlockD
        self.body_down = nn.ModuleList(
            block(ch[i], ch[i + 1], up=False, first=i == 0, spectral_norm=sn) for i in range(n)
        )
        up = [block(ch[-1], ch[-2], up=True, spectral_norm=sn)]
        up += [block(2 * ch[-1 - i], ch[-2 - i], up=True, spectral_norm=sn) for i in range(1, n - 1)]
        up.append(block(2 * ch[1], width, up=True, spectral_norm=sn))
        self.body_up = nn.ModuleList(up)
        self.layer_up_last = nn.Conv2d(width, num_classes + 1, 1)

        # where the patch heads read: encoder block indices and decoder block indices
        upper = max(0, n - 3) if heads_from_bottleneck else min(3, n - 1)
        self.enc_head_at = sorted({upper, n - 1}) if encoder_heads else []
        self.dec_head_at = [0, 1] if decoder_heads else []
        dec_out = [ch[-2 - i] for i in range(n - 1)] + [width]
        self.patch_heads = nn.ModuleList(
            [patch_head(ch[i + 1], width) for i in self.enc_head_at]
            + [patch_head(dec_out[i], width) for i in self.dec_head_at]
        )

    def forward(self, image: Tensor) -> DiscriminatorOutput:
        x = image
        encoder: list[Tensor] = []
        for block in self.body_down:
            x = block(x)
            encoder.append(x)
        decoder: list[Tensor] = []
        x = self.body_up[0](x)
        decoder.append(x)
        for i in range(1, len(self.body_down)):
            x = self.body_up[i](torch.cat([encoder[-i - 1], x], dim=1))
            decoder.append(x)
        logits = self.layer_up_last(x)
        psi = [encoder[i] for i in self.enc_head_at] + [decoder[i] for i in self.dec_head_at]
        scores = [head(f) for head, f in zip(self.patch_heads, psi)]
        return DiscriminatorOutput(logits, scores, encoder[:-1], decoder[1:])
