import torch

from dpgan.evaluate.stripes import NeighbourDifferences, stripe_ratio


def _diffs(images):
    d = NeighbourDifferences()
    for chunk in images.split(3):
        d.update(chunk)
    return d


def test_horizontal_bands_score_far_above_isotropic_images():
    torch.manual_seed(0)
    real = torch.rand(6, 3, 16, 32) * 2 - 1  # isotropic noise: V / H ~ 1
    rows = torch.rand(6, 3, 16, 1) * 2 - 1
    banded = rows.expand(6, 3, 16, 32) + 0.05 * torch.randn(6, 3, 16, 32)
    assert abs(stripe_ratio(_diffs(real), _diffs(real)) - 1.0) < 1e-9
    assert stripe_ratio(_diffs(banded), _diffs(real)) > 5.0
    # vertical bands are the other way round
    assert stripe_ratio(_diffs(banded.transpose(-1, -2)), _diffs(real.transpose(-1, -2))) < 0.2


def test_batches_are_weighted_by_image_count():
    torch.manual_seed(1)
    x = torch.rand(7, 3, 8, 8)
    whole, parts = NeighbourDifferences(), _diffs(x)
    whole.update(x)
    assert abs(whole.anisotropy - parts.anisotropy) < 1e-9
