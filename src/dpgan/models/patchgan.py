"""The SPADE baseline's discriminator: pix2pixHD's multi-scale PatchGAN.

It judges [one-hot label ; image] rather than the image alone, and scores patches as real or
fake, without segmenting them. `num_scales` copies see the input at full resolution, then
average-pooled by 2 each time. Every copy is 4x4 convolutions: `num_layers - 1` of them with
stride 2 (the last of those with stride 1), channels width x [1, 2, 4, 8, ...] capped at 8 x
width, spectral norm and parameter-free instance norm after all but the first, LeakyReLU(0.2),
then a 4x4 conv to one score per patch. The layer shapes are the published SPADE ones
(n_layers_D = 4, num_D = 2, norm "spectralinstance": no bias before a norm).

Its intermediate outputs are the features of SPADE's feature-matching loss.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpgan.models.spade import maybe_sn


class PatchGANOutput(NamedTuple):
    scores: list[Tensor]  # one (B, 1, h, w) map per scale, full resolution first
    features: list[list[Tensor]]  # per scale: the outputs of every layer before the scoring conv


class PatchGAN(nn.Module):
    def __init__(self, in_channels: int, width: int, num_layers: int, spectral_norm: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, width, 4, stride=2, padding=2),
                                                 nn.LeakyReLU(0.2))]
        ch = width
        for n in range(1, num_layers):
            out = min(2 * ch, 8 * width)
            stride = 1 if n == num_layers - 1 else 2
            conv = maybe_sn(nn.Conv2d(ch, out, 4, stride=stride, padding=2, bias=False), spectral_norm)
            layers.append(nn.Sequential(conv, nn.InstanceNorm2d(out, affine=False), nn.LeakyReLU(0.2)))
            ch = out
        self.layers = nn.ModuleList(layers)
        self.score = nn.Conv2d(ch, 1, 4, stride=1, padding=2)

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return self.score(x), features


class MultiscalePatchDiscriminator(nn.Module):
    def __init__(
        self,
        num_classes: int,
        *,
        width: int = 64,
        num_scales: int = 2,
        num_layers: int = 4,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_scales < 1 or num_layers < 2:
            raise ValueError("the multi-scale PatchGAN needs at least 1 scale and 2 layers")
        self.num_classes = num_classes
        self.scales = nn.ModuleList(
            PatchGAN(num_classes + 3, width, num_layers, spectral_norm) for _ in range(num_scales)
        )

    def forward(self, image: Tensor, label_onehot: Tensor) -> PatchGANOutput:
        if label_onehot.shape[1] != self.num_classes or label_onehot.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"expected a one-hot label map (B, {self.num_classes}, {image.shape[-2]}, {image.shape[-1]}), "
                f"got {tuple(label_onehot.shape)}"
            )
        x = torch.cat([label_onehot.to(image.dtype), image], dim=1)
        scores, features = [], []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            s, f = d(x)
            scores.append(s)
            features.append(f)
        return PatchGANOutput(scores, features)
