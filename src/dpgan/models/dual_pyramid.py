"""The dual pyramid generator: DP-GAN's answer to objects of very different sizes.

A small convolutional pyramid encodes the condition [z ; one-hot label] into features at
every scale from full resolution down to 1/2^(n-1):

    level 0: conv -> pyramid_width/2 (full res)     level 1: conv -> pyramid_width (full res)
    level k (2..n): stride-2 conv, pyramid_width     (each conv + BatchNorm + ReLU)

The SPADE block working at scale s is conditioned on the pyramid level of that same scale
(fine detail for small objects) concatenated with the coarsest level upsampled to s (the
global layout): 2 x pyramid_width channels, from which gamma and beta are predicted directly.
The second pyramid is the generator's own, coarse-to-fine image pyramid; hence "dual".
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpgan.models.oasis_generator import ConditionalGenerator
from dpgan.models.options import GeneratorOptions


def _conv_bn_relu(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class LabelPyramid(nn.Module):
    """Condition -> list of num_res_blocks + 1 feature maps (see module docstring)."""

    def __init__(self, cond_channels: int, pyramid_width: int, num_res_blocks: int) -> None:
        super().__init__()
        if pyramid_width < 2:
            raise ValueError("pyramid_width must be at least 2")
        half = pyramid_width // 2
        levels = [_conv_bn_relu(cond_channels, half, 1), _conv_bn_relu(half, pyramid_width, 1)]
        levels += [_conv_bn_relu(pyramid_width, pyramid_width, 2) for _ in range(num_res_blocks - 1)]
        self.levels = nn.ModuleList(levels)

    def forward(self, cond: Tensor) -> list[Tensor]:
        out = []
        x = cond
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


class DualPyramidGenerator(ConditionalGenerator):
    def __init__(self, num_classes: int, options: GeneratorOptions = GeneratorOptions(kind="dp")) -> None:
        super().__init__(num_classes, options)
        o = options
        self.pyramid = LabelPyramid(self.cond_channels, o.pyramid_width, o.num_res_blocks)
        self.build_trunk(o.width, 2 * o.pyramid_width, 0, o.spectral_norm)

    def block_conditions(self, cond: Tensor) -> Callable[[int, torch.Size], Tensor]:
        levels = self.pyramid(cond)
        coarsest, n = levels[-1], len(self.body)

        def condition_of(i: int, size: torch.Size) -> Tensor:
            local = levels[n - i]  # the pyramid level at this block's scale: object detail
            layout = F.interpolate(coarsest, size=size, mode="bilinear", align_corners=False)
            return torch.cat([layout, local], dim=1)

        return condition_of
