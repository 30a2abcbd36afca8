"""Training end to end on tiny configurations of the embedded dataset."""

import json

import pytest
import torch

from dpgan.checkpoint import list_checkpoints, load_checkpoint
from dpgan.config import Config, DataConfig, ModelConfig, TrainConfig
from dpgan.presets import preset
from dpgan.data.synthetic import SYNTHETIC_STREETS, SyntheticStreets
from dpgan.models import build_models_from_config
from dpgan.tensors import one_hot
from dpgan.training.loop import train
from dpgan.training.steps import Batch, Objective, discriminator_step, generator_step
from dpgan import losses


def tiny(steps=4, **model) -> Config:
    return Config(
        name="tiny",
        data=DataConfig(height=32, width=64, num_train=12, num_val=4, num_workers=0),
        model=ModelConfig(g_width=4, d_width=4, z_dim=8, pyramid_width=8, spade_hidden=8,
                          num_res_blocks=4, **model),
        train=TrainConfig(steps=steps, batch_size=2, log_every=2, sample_every=2, checkpoint_every=2,
                          ema_bn_batches=2, keep_checkpoints=5),
    )


def _batch(cfg, n_cls):
    ds = SyntheticStreets("train", height=32, width=64, num_images=4, seed=0)
    items = [ds[i] for i in range(2)]
    label = torch.stack([it["label"] for it in items])
    return Batch(torch.stack([it["image"] for it in items]), label, one_hot(label, n_cls))


@pytest.mark.parametrize("patch,feature", [("enc", "dec"), ("enc+dec", "enc+dec"), ("dec", "enc")])
def test_every_trainable_parameter_gets_a_gradient(patch, feature):
    """The published code's patch heads never train; ours must, and so must everything else."""
    cfg = tiny(patch_loss=patch, feature_loss=feature)
    n_cls = SYNTHETIC_STREETS.num_classes
    G, D = build_models_from_config(cfg.model, n_cls)
    batch = _batch(cfg, n_cls)
    alpha = losses.class_balance_weights(batch.label_map, n_cls)

    D.requires_grad_(False)
    generator_step(Objective.from_config(cfg), G, D, batch, alpha)["g/total"].backward()
    D.requires_grad_(True)
    dead_g = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead_g, f"generator parameters without gradient: {dead_g}"
    assert all(p.grad is None for p in D.parameters()), "the G step must not touch D"

    # At initialisation every patch score lies inside both hinge margins, where the real term's
    # -1 and the fake term's +1 cancel exactly in the gradient of each head's last bias. Start
    # from scores above the real margin (as after some training) so the bias must move too.
    with torch.no_grad():
        for head in D.patch_heads:
            head[-1].bias.fill_(1.5)
    discriminator_step(Objective.from_config(cfg), G, D, batch, alpha)["d/total"].backward()
    dead_d = [n for n, p in D.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead_d, f"discriminator parameters without gradient: {dead_d}"
    heads = [n for n, _ in D.named_parameters() if "patch" in n or "head" in n]
    assert heads, "the DP discriminator must have patch-head parameters"


def test_oasis_discriminator_step_has_no_patch_or_feature_terms():
    cfg = tiny(generator="oa", patch_loss="none", feature_loss="none")
    n_cls = SYNTHETIC_STREETS.num_classes
    G, D = build_models_from_config(cfg.model, n_cls)
    batch = _batch(cfg, n_cls)
    g = generator_step(Objective.from_config(cfg), G, D, batch, None)
    d = discriminator_step(Objective.from_config(cfg), G, D, batch, None)
    assert set(g) == {"g/pixel", "g/total"}
    assert set(d) == {"d/fake", "d/real", "d/labelmix", "d/total", "train/d_real_ce", "train/d_real_acc"}


def test_d_segmentation_term_is_added_only_when_weighted():
    cfg = tiny()
    n_cls = SYNTHETIC_STREETS.num_classes
    G, D = build_models_from_config(cfg.model, n_cls)
    batch = _batch(cfg, n_cls)
    torch.manual_seed(0)
    off = discriminator_step(Objective.from_config(cfg), G, D, batch, None)
    assert "d/segmentation" not in off
    on_cfg = cfg.override(loss={"lambda_d_segmentation": 2.0})
    torch.manual_seed(0)
    on = discriminator_step(Objective.from_config(on_cfg), G, D, batch, None)
    with torch.no_grad():
        expected = 2.0 * losses.semantic_segmentation_loss(D(batch.image).logits, batch.label_map)
    assert torch.isclose(on["d/segmentation"], expected, rtol=1e-4)
    assert torch.isclose(on["d/total"], off["d/total"] + on["d/segmentation"], rtol=1e-4)


def test_train_writes_a_complete_run_and_resumes_exactly(tmp_path):
    straight = train(tiny(steps=4), tmp_path / "straight", device="cpu", progress=False)
    assert straight.step == 4
    run = tmp_path / "straight"
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4
    assert (run / "samples" / "latest.png").exists() and (run / "samples" / "step_00000002.png").exists()
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert [p.name for p in list_checkpoints(run)] == ["step_00000002.pt", "step_00000004.pt"]
    assert len((run / "losses.jsonl").read_text().splitlines()) == 2

    # 2 steps, stop, resume for 2 more: bitwise the same weights as 4 steps straight
    train(tiny(steps=2), tmp_path / "split", device="cpu", progress=False)
    train(tiny(steps=4), tmp_path / "split", device="cpu", progress=False, resume=True)
    a, b = load_checkpoint(run), load_checkpoint(tmp_path / "split")
    for key in ("generator", "discriminator", "generator_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"


def test_ema_statistics_are_recomputed_once_per_step_that_uses_them(tmp_path, monkeypatch):
    """A sample and a checkpoint at the same step share one BN recalibration of the EMA copy."""
    import dpgan.training.outputs as train_module

    calls = []
    real = train_module.recalibrate_batchnorm

    def counting(model, batches, forward):
        calls.append(1)
        return real(model, batches, forward)

    monkeypatch.setattr(train_module, "recalibrate_batchnorm", counting)
    train(tiny(steps=4), tmp_path / "run", device="cpu", progress=False)  # sample + save at 2 and 4
    assert len(calls) == 2
    ema = load_checkpoint(tmp_path / "run")["generator_ema"]
    means = [v for k, v in ema.items() if k.endswith("running_mean")]
    assert means and not all(torch.count_nonzero(m) == 0 for m in means), "EMA BN statistics never computed"


def test_same_seed_same_result(tmp_path):
    train(tiny(steps=2), tmp_path / "a", device="cpu", progress=False)
    train(tiny(steps=2), tmp_path / "b", device="cpu", progress=False)
    a, b = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert all(torch.equal(v, b["generator"][k]) for k, v in a["generator"].items())


def test_resume_refuses_a_different_model(tmp_path):
    from dpgan.errors import CheckpointError

    train(tiny(steps=2), tmp_path / "r", device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="different model"):
        train(tiny(steps=4, generator="oa"), tmp_path / "r", device="cpu", progress=False, resume=True)


def test_default_preset_is_the_dp_gan_on_synthetic_streets():
    cfg = preset("synthetic-streets")
    assert cfg.data.dataset == "synthetic-streets"
    # the CPU preset's one loss deviation: the feature loss reads D's encoder (docs/training-dynamics.md)
    assert cfg.model.generator == "dp" and (cfg.model.patch_loss, cfg.model.feature_loss) == ("enc", "enc")
    assert (cfg.train.beta1, cfg.train.beta2) == (0.0, 0.999)
    # the study's DP-GAN row is the published model, whatever the preset's default
    assert preset("synthetic-streets", "dp-dp").model.discriminator == "dp"
    for name in ("cityscapes", "ade20k", "ade20k-outdoor", "coco-stuff"):
        assert preset(name).model.discriminator == "dp"
