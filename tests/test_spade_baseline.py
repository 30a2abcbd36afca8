"""The SPADE baseline: its multi-scale PatchGAN, its losses, its config row and a tiny run."""

import json
import math

import pytest
import torch

from dpgan import DPGAN
from dpgan import losses
from dpgan.checkpoint import load_checkpoint
from dpgan.cli import main
from dpgan.config import Config
from dpgan.presets import ABLATIONS, preset
from dpgan.data.synthetic import SYNTHETIC_STREETS
from dpgan.errors import DPGANError
from dpgan.models import MultiscalePatchDiscriminator, OASISGenerator, build_models_from_config
from dpgan.models.patchgan import PatchGAN
from dpgan.training.steps import Objective, patchgan_discriminator_step, patchgan_generator_step, training_steps
from test_train import _batch, tiny
from tiny_args import TINY_TRAIN


def spade_tiny(steps=4) -> Config:
    return tiny(steps=steps).override(model=ABLATIONS["spade"], loss={"labelmix": False, "class_balancing": False})


def test_patchgan_has_the_published_spade_layer_shapes():
    """n_layers_D 4, ndf 64, Cityscapes (35 classes + instance edges + RGB = 39 channels): first
    and last convs with bias, the three normalised ones without; two scales."""
    D = MultiscalePatchDiscriminator(36, width=64)
    in_ch = 36 + 3
    per_scale = (in_ch * 64 * 16 + 64) + 64 * 128 * 16 + 128 * 256 * 16 + 256 * 512 * 16 + (512 * 16 + 1)
    assert sum(p.numel() for p in D.parameters()) == 2 * per_scale
    x, label = torch.randn(1, 3, 64, 128), torch.zeros(1, 36, 64, 128)
    out = D(x, label)
    # kernel 4, padding 2: 64x128 -> 33x65 -> 17x33 -> 9x17 -> 10x18 (stride 1) -> 11x19 scores
    assert [tuple(s.shape) for s in out.scores] == [(1, 1, 11, 19), (1, 1, 7, 11)]
    assert [tuple(f.shape[1:2]) for f in out.features[0]] == [(64,), (128,), (256,), (512,)]


def test_patchgan_channel_cap_and_label_check():
    d = PatchGAN(10, 4, num_layers=6, spectral_norm=False)
    assert [layer[0].out_channels for layer in d.layers] == [4, 8, 16, 32, 32, 32]  # capped at 8 x width
    with pytest.raises(ValueError, match="one-hot label map"):
        MultiscalePatchDiscriminator(5, width=4)(torch.randn(1, 3, 16, 16), torch.zeros(1, 4, 16, 16))


def test_gan_feature_matching_is_l1_summed_over_layers_and_averaged_over_scales():
    a = [[torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)], [torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]]
    b = [[torch.ones(1, 2, 2, 2), torch.full((1, 1, 1, 1), 3.0)], [torch.zeros(1, 2, 2, 2), torch.ones(1, 1, 1, 1)]]
    # scale 0: 1 + 3 = 4; scale 1: 0 + 1 = 1; mean 2.5
    assert losses.gan_feature_matching_loss(a, b).item() == pytest.approx(2.5)


def test_spade_row_is_the_oasis_generator_without_noise_against_the_patchgan():
    cfg = preset("synthetic-streets", "spade")
    assert cfg.model.d_arch == "multiscale-patch" and cfg.model.discriminator == "multiscale-patch"
    assert not cfg.loss.labelmix and not cfg.loss.class_balancing
    G, D = build_models_from_config(cfg.model, SYNTHETIC_STREETS.num_classes)
    assert isinstance(G, OASISGenerator) and not G.use_3d_noise
    assert isinstance(D, MultiscalePatchDiscriminator)
    assert training_steps(cfg.model.d_arch) == (patchgan_generator_step, patchgan_discriminator_step)
    # the segmenting discriminator's switches and LabelMix make no sense here: refused, named
    with pytest.raises(DPGANError, match="patch_loss and model.feature_loss"):
        cfg.override(model={"patch_loss": "enc"})
    with pytest.raises(DPGANError, match="LabelMix"):
        cfg.override(loss={"labelmix": True})
    with pytest.raises(DPGANError, match="d_arch"):
        cfg.override(model={"d_arch": "pix2pix"})


def test_spade_steps_train_every_parameter():
    cfg = spade_tiny()
    n_cls = SYNTHETIC_STREETS.num_classes
    G, D = build_models_from_config(cfg.model, n_cls)
    batch = _batch(cfg, n_cls)
    D.requires_grad_(False)
    g = patchgan_generator_step(Objective.from_config(cfg), G, D, batch, None)
    assert set(g) == {"g/adversarial", "g/gan_feature", "g/total"}
    assert g["g/gan_feature"].item() > 0
    g["g/total"].backward()
    D.requires_grad_(True)
    dead_g = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead_g and all(p.grad is None for p in D.parameters())
    with torch.no_grad():  # scores above the real margin, so the last biases get a gradient (see test_train)
        for scale in D.scales:
            scale.score.bias.fill_(1.5)
    d = patchgan_discriminator_step(Objective.from_config(cfg), G, D, batch, None)
    assert set(d) == {"d/adversarial", "d/total"}
    d["d/total"].backward()
    dead_d = [n for n, p in D.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead_d, dead_d


def test_spade_baseline_trains_resumes_exactly_and_synthesizes(tmp_path):
    straight = tmp_path / "straight"
    assert main(["train", "--run-dir", str(straight), "--ablation", "spade", *TINY_TRAIN,
                 "--steps", "4", "--checkpoint-every", "2"]) == 0
    split = tmp_path / "split"
    assert main(["train", "--run-dir", str(split), "--ablation", "spade", *TINY_TRAIN]) == 0
    assert main(["train", "--run-dir", str(split), "--ablation", "spade", *TINY_TRAIN,
                 "--steps", "4", "--checkpoint-every", "2", "--resume"]) == 0
    a, b = load_checkpoint(straight), load_checkpoint(split)
    for key in ("generator", "discriminator", "generator_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    logged = [json.loads(line) for line in (straight / "losses.jsonl").read_text().splitlines()]
    assert {"g/adversarial", "g/gan_feature", "d/adversarial"} <= set(logged[-1])
    assert all(math.isfinite(v) for entry in logged for v in entry.values())
    # no 3D noise: the same label map gives the same image whatever the seed (as SPADE without its encoder)
    model = DPGAN.from_checkpoint(straight, device="cpu")
    label = torch.zeros(32, 64, dtype=torch.long)
    label[16:] = 1
    one, other = model.generate(label, seed=0), model.generate(label, seed=5)
    assert one.shape == (1, 32, 64, 3) and (one == other).all()
