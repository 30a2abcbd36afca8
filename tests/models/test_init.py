"""The initialisation schemes against statistics measured on the published code.

tests/data/published/init_stats.json holds, for the published G and D built at the Cityscapes
configuration, the std of every spectral-normed conv's `weight_orig` (grouped by shape) and
the BatchNorm weights' mean and std right after its `init_networks`.
"""

import json
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from dpgan.presets import preset
from dpgan.models import build_models_from_config

STATS = json.loads((Path(__file__).parents[1] / "data" / "published" / "init_stats.json").read_text())


def _sn_std_by_shape(model):
    by = defaultdict(list)
    for m in model.modules():
        if hasattr(m, "parametrizations") and hasattr(m.parametrizations, "weight"):
            w = m.parametrizations.weight.original
            by["x".join(map(str, w.shape))].append(float(w.std()))
    return {k: sum(v) / len(v) for k, v in by.items()}


@pytest.fixture(scope="module")
def cityscapes_models():
    cfg = preset("cityscapes")
    assert cfg.model.init == "published"
    torch.manual_seed(0)
    published = build_models_from_config(cfg.model, 35)
    torch.manual_seed(0)
    default = build_models_from_config(cfg.model.__class__(**{**cfg.model.__dict__, "init": "sn-default"}), 35)
    return published, default


@pytest.mark.parametrize("net", ["G", "D"])
def test_published_init_matches_the_published_code(cityscapes_models, net):
    (g, d), _ = cityscapes_models
    ours = _sn_std_by_shape(g if net == "G" else d)
    theirs = STATS[net]["spectral_norm_weight_orig_std_by_shape"]
    assert set(ours) == set(theirs)  # the same spectral-normed layers
    for shape, ref in theirs.items():
        n = ref["count"] * torch.Size(map(int, shape.split("x"))).numel()
        # a sample std of n weights is within 4 standard errors (1 / sqrt(2n)) of the scheme's
        assert ours[shape] == pytest.approx(ref["mean_std"], rel=max(0.02, 4 / (2 * n) ** 0.5)), shape
    bn = [(float(m.weight.mean()), float(m.weight.std())) for m in (g if net == "G" else d).modules()
          if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.weight is not None]
    assert len(bn) == len(STATS[net]["batchnorm_weights"])
    for (mean, std), (ref_mean, ref_std) in zip(sorted(bn), sorted(STATS[net]["batchnorm_weights"])):
        assert mean == pytest.approx(1.0, abs=0.01) and std == pytest.approx(0.02, rel=0.35)


@pytest.mark.parametrize("net", [0, 1])
def test_sn_default_leaves_spectral_normed_convs_25_to_35x_larger(cityscapes_models, net):
    published, default = cityscapes_models
    p, q = _sn_std_by_shape(published[net]), _sn_std_by_shape(default[net])
    ratios = sorted(q[k] / p[k] for k in p)
    assert 20 < ratios[len(ratios) // 2] < 40


def test_unknown_scheme_is_refused():
    from dpgan.errors import DPGANError

    with pytest.raises(DPGANError, match="model.init"):
        preset("synthetic-streets").override(model={"init": "xavier"})
