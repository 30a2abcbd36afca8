"""One generator step and one discriminator step: the losses of a batch, from built modules.

What the losses are (which terms, which discriminator features, their weights) is decided once,
from the configuration, in `Objective.from_config`; the steps take it, the modules and tensors.
The losses themselves are the pure functions of dpgan.losses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dpgan import losses


@dataclass
class Batch:
    image: Tensor  # (B, 3, H, W) in [-1, 1]
    label_map: Tensor  # (B, H, W) long
    onehot: Tensor  # (B, N, H, W)
    # The step's random draws for these images (global_batch.StepNoise); None: G and LabelMix draw
    z_g: Tensor | None = None  # (B, z_dim) for the G step
    z_d: Tensor | None = None  # (B, z_dim) for the D step
    labelmix_mask: Tensor | None = None  # (B, 1, H, W)


@dataclass(frozen=True)
class Objective:
    """The terms of the two steps' losses and their weights."""

    patch_heads: bool  # hinge losses on D's patch scores (model.patch_loss != "none")
    feature_taps: str | None  # D features matched by the feature loss ("enc", "dec", "enc+dec"), or None
    labelmix: bool
    lambda_patch: float
    lambda_feature: float
    lambda_labelmix: float
    lambda_gan_feature: float  # SPADE baseline: L1 matching of the PatchGAN's features
    lambda_d_segmentation: float = 0.0  # D's plain N-class CE on real images (not published; 0 = off)
    ignore_index: int | None = None  # the dataset's don't-care class, left out of that term

    @classmethod
    def from_config(cls, cfg, ignore_index: int | None = None) -> Objective:
        m, lc = cfg.model, cfg.loss
        return cls(
            patch_heads=m.patch_loss != "none",
            feature_taps=None if m.feature_loss == "none" else m.feature_loss,
            labelmix=lc.labelmix,
            lambda_patch=lc.lambda_patch,
            lambda_feature=lc.lambda_feature,
            lambda_labelmix=lc.lambda_labelmix,
            lambda_gan_feature=lc.lambda_gan_feature,
            lambda_d_segmentation=lc.lambda_d_segmentation,
            ignore_index=ignore_index,
        )


def taps(out, where: str) -> list[Tensor]:
    """The discriminator features named by an ablation switch ('enc', 'dec', 'enc+dec')."""
    picked: list[Tensor] = []
    if "enc" in where:
        picked += out.encoder_features
    if "dec" in where:
        picked += out.decoder_features
    return picked


def generator_step(obj: Objective, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor | None) -> dict[str, Tensor]:
    """G wants D to segment its image as the label map, to fool the patch heads, and to match
    D's features of the real image."""
    fake = G(batch.onehot, batch.z_g)
    out = D(fake)
    parts = {"g/pixel": losses.pixel_loss(out.logits, batch.label_map, real=True, class_weights=alpha)}
    if obj.patch_heads:
        parts["g/patch"] = obj.lambda_patch * losses.patch_loss_g(out.patch_scores)
    if obj.feature_taps is not None:
        with torch.no_grad():  # targets only: no graph through D on the real image
            real_out = D(batch.image)
        parts["g/feature"] = obj.lambda_feature * losses.feature_matching_loss(
            taps(out, obj.feature_taps), taps(real_out, obj.feature_taps)
        )
    parts["g/total"] = torch.stack(list(parts.values())).sum()
    return parts


def discriminator_step(obj: Objective, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor | None) -> dict[str, Tensor]:
    """D segments real pixels into their class and generated pixels into 'fake', scores patches
    with hinge losses, and is regularised by LabelMix."""
    with torch.no_grad():
        fake = G(batch.onehot, batch.z_d)
    out_fake = D(fake)
    out_real = D(batch.image)
    parts = {
        "d/fake": losses.pixel_loss(out_fake.logits, batch.label_map, real=False),
        "d/real": losses.pixel_loss(out_real.logits, batch.label_map, real=True, class_weights=alpha),
    }
    if obj.lambda_d_segmentation > 0:
        parts["d/segmentation"] = obj.lambda_d_segmentation * losses.semantic_segmentation_loss(
            out_real.logits, batch.label_map, obj.ignore_index)
    if obj.patch_heads:
        parts["d/patch"] = obj.lambda_patch * losses.patch_loss_d(out_real.patch_scores, out_fake.patch_scores)
    if obj.labelmix:
        mask = batch.labelmix_mask if batch.labelmix_mask is not None else losses.labelmix_mask(
            batch.label_map, batch.onehot.shape[1])
        out_mixed = D(losses.labelmix_images(batch.image, fake, mask))
        parts["d/labelmix"] = obj.lambda_labelmix * losses.labelmix_loss(
            out_mixed.logits, out_real.logits, out_fake.logits, mask
        )
    parts["d/total"] = torch.stack(list(parts.values())).sum()
    parts.update(losses.segmentation_diagnostics(out_real.logits.detach(), batch.label_map))
    return parts


def patchgan_generator_step(
    obj: Objective, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor | None
) -> dict[str, Tensor]:
    """SPADE baseline (model.d_arch "multiscale-patch"): G wants its patches scored real (hinge,
    linear form) and D's features of its image, at every layer and scale, to match those of the
    real image (L1). `alpha` is unused: this discriminator does not segment."""
    fake = G(batch.onehot, batch.z_g)
    out = D(fake, batch.onehot)
    with torch.no_grad():  # targets only
        real_out = D(batch.image, batch.onehot)
    parts = {
        "g/adversarial": losses.patch_loss_g(out.scores),
        "g/gan_feature": obj.lambda_gan_feature * losses.gan_feature_matching_loss(out.features, real_out.features),
    }
    parts["g/total"] = torch.stack(list(parts.values())).sum()
    return parts


def patchgan_discriminator_step(
    obj: Objective, G: nn.Module, D: nn.Module, batch: Batch, alpha: Tensor | None
) -> dict[str, Tensor]:
    """SPADE baseline: hinge loss on every scale's patch scores of (label, real) and (label, fake)."""
    with torch.no_grad():
        fake = G(batch.onehot, batch.z_d)
    out_fake = D(fake, batch.onehot)
    out_real = D(batch.image, batch.onehot)
    parts = {"d/adversarial": losses.patch_loss_d(out_real.scores, out_fake.scores)}
    parts["d/total"] = parts["d/adversarial"]
    return parts


def training_steps(d_arch: str):
    """(G step, D step) for the discriminator a run trains against."""
    if d_arch == "multiscale-patch":
        return patchgan_generator_step, patchgan_discriminator_step
    return generator_step, discriminator_step
