"""A stripe measure: are generated images banded where real ones are not?

Horizontal bands (rows of one colour, sharp changes between rows) make neighbouring pixels
differ much more vertically than horizontally. The measure compares that anisotropy with the
real images': stripe_ratio = (V/H of generated) / (V/H of real), where V and H are the mean
absolute differences between vertical and horizontal neighbours. 1 is as anisotropic as real
images; a banded generator scores well above 1 (the default run of issue 16 scored about 2),
a blurred one that is smooth in both directions stays near 1.
"""

from __future__ import annotations

import torch
from torch import Tensor


class NeighbourDifferences:
    """Running mean |vertical| and |horizontal| neighbour difference over image batches."""

    def __init__(self) -> None:
        self.vertical = 0.0
        self.horizontal = 0.0
        self.count = 0

    @torch.no_grad()
    def update(self, images: Tensor) -> None:
        x = images.float()
        self.vertical += float((x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3)).double().sum())
        self.horizontal += float((x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3)).double().sum())
        self.count += x.shape[0]

    @property
    def anisotropy(self) -> float:
        """V / H; NaN before any image or for images constant along rows."""
        return self.vertical / self.horizontal if self.horizontal > 0 else float("nan")


def stripe_ratio(generated: NeighbourDifferences, real: NeighbourDifferences) -> float:
    return generated.anisotropy / real.anisotropy
