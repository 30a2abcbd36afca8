"""DP-GAN's supervision at pixel, patch and feature level, plus LabelMix (OASIS).

Pure functions of tensors. None of them calls `.item()`: every term keeps its graph, so the
patch heads train (the published code turned the patch loss into a Python number).

Conventions: `label_map` is a LongTensor (B, H, W) of class ids in [0, N); the discriminator's
segmentation logits have N + 1 channels, channel 0 is the "fake" class and channel c + 1 is
semantic class c (as in the published code).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

FAKE_CLASS = 0


def class_balance_weights(label_map: Tensor, num_classes: int, ignore_index: int | None = None) -> Tensor:
    """alpha_c: inverse pixel frequency of each class in this batch, shape (N,).

    w_c = (B*H*W) / (K * count_c) with K the number of classes present; absent classes and
    the don't-care class get weight 0 (published `get_class_balancing`).
    """
    counts = torch.bincount(label_map.reshape(-1), minlength=num_classes).to(torch.float32)
    return class_balance_weights_from_counts(counts, label_map.numel(), ignore_index)


def class_balance_weights_from_counts(counts: Tensor, num_pixels: int, ignore_index: int | None = None) -> Tensor:
    """alpha_c from per-class pixel counts over `num_pixels` pixels (for counts summed over
    several processes): w_c = num_pixels / (K * count_c), 0 where count_c = 0 or c is ignored."""
    counts = counts.clone()
    if ignore_index is not None:
        counts[ignore_index] = 0.0
    present = counts > 0
    num_present = present.sum().clamp(min=1)
    weights = num_pixels / (num_present * counts.clamp(min=1.0))
    return torch.where(present, weights, torch.zeros_like(weights))


def pixel_loss(logits: Tensor, label_map: Tensor, *, real: bool, class_weights: Tensor | None = None) -> Tensor:
    """(N+1)-class cross entropy: real pixels -> their class (weighted by alpha_c), fake -> class 0.

    The discriminator uses it on real images (real=True) and generated ones (real=False); the
    generator uses it on generated images with real=True (it wants them segmented correctly).
    """
    if not real:
        target = torch.full_like(label_map, FAKE_CLASS)
        return F.cross_entropy(logits, target)
    per_pixel = F.cross_entropy(logits, label_map + 1, reduction="none")
    if class_weights is None:
        return per_pixel.mean()
    return (per_pixel * class_weights[label_map]).mean()


def semantic_segmentation_loss(logits: Tensor, label_map: Tensor, ignore_index: int | None = None) -> Tensor:
    """Unweighted N-class cross entropy of D's semantic channels (the fake channel left out)
    against the label map: a plain segmentation term on real images, which does not ask D
    whether the pixel is real. Not part of the published objective."""
    return F.cross_entropy(logits[:, FAKE_CLASS + 1:], label_map,
                           ignore_index=-100 if ignore_index is None else ignore_index)


@torch.no_grad()
def segmentation_diagnostics(logits: Tensor, label_map: Tensor) -> dict[str, Tensor]:
    """How well D segments real images: its unweighted (N+1)-class cross entropy and pixel
    accuracy against the label map. Near ln(N+1) and 1/(N+1) D has not started to segment,
    and the pixel loss gives G no per-class signal yet."""
    target = label_map + 1
    return {
        "train/d_real_ce": F.cross_entropy(logits.float(), target),
        # among the N semantic channels: D can segment well while still unsure real from fake
        "train/d_real_acc": (logits[:, FAKE_CLASS + 1:].argmax(1) == label_map).float().mean(),
    }


def patch_loss_d(real_scores: Sequence[Tensor], fake_scores: Sequence[Tensor]) -> Tensor:
    """Hinge loss of the patch heads for D, averaged over heads:
    L_ms^i = E[max(1 - D_p^i(real), 0)] + E[max(1 + D_p^i(fake), 0)]."""
    if len(real_scores) != len(fake_scores) or not real_scores:
        raise ValueError("patch_loss_d needs the same, non-zero number of real and fake score maps")
    terms = [F.relu(1.0 - r).mean() + F.relu(1.0 + f).mean() for r, f in zip(real_scores, fake_scores)]
    return torch.stack(terms).mean()


def patch_loss_g(fake_scores: Sequence[Tensor]) -> Tensor:
    """Generator side of the patch loss, -(1/L) sum_i E[D_p^i(fake)].

    The poster writes it with a min(., 0); we use the linear form of the published code (and of
    SPADE/pix2pixHD), which keeps a gradient when D is confidently wrong.
    """
    if not fake_scores:
        raise ValueError("patch_loss_g needs at least one score map")
    return torch.stack([-f.mean() for f in fake_scores]).mean()


def feature_matching_loss(fake_features: Sequence[Tensor], real_features: Sequence[Tensor]) -> Tensor:
    """L_fm = sum_i ||phi^i(real) - phi^i(fake)||^2 / (C^i H^i W^i), averaged over the batch.

    Real features are targets: pass them computed under `torch.no_grad()`.
    """
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError("feature_matching_loss needs the same, non-zero number of feature maps")
    return torch.stack([F.mse_loss(f, r.detach()) for f, r in zip(fake_features, real_features)]).sum()


def gan_feature_matching_loss(
    fake_features: Sequence[Sequence[Tensor]], real_features: Sequence[Sequence[Tensor]]
) -> Tensor:
    """The SPADE baseline's feature matching (pix2pixHD): per discriminator scale, the sum over
    its layers of the mean absolute difference, then averaged over scales. Real features are
    targets (detached)."""
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError("gan_feature_matching_loss needs the same, non-zero number of scales")
    per_scale = [
        torch.stack([F.l1_loss(f, r.detach()) for f, r in zip(fs, rs, strict=True)]).sum()
        for fs, rs in zip(fake_features, real_features)
    ]
    return torch.stack(per_scale).mean()


def labelmix_mask(label_map: Tensor, num_classes: int, generator: torch.Generator | None = None) -> Tensor:
    """Binary mask (B, 1, H, W): one independent coin per (image, class) decides real or fake.

    Built on the label's device without a Python loop over classes (the published version
    remaps in place, so one class's coin can overwrite another's pixels).
    """
    coins = torch.randint(0, 2, (label_map.shape[0], num_classes), device=label_map.device, generator=generator)
    return labelmix_mask_from_coins(label_map, coins)


def labelmix_mask_from_coins(label_map: Tensor, coins: Tensor) -> Tensor:
    """The LabelMix mask (B, 1, H, W) for given coins (B, N): pixel (b, y, x) takes the coin of
    (image b, class label_map[b, y, x])."""
    b = label_map.shape[0]
    mask = torch.gather(coins.to(label_map.device), 1, label_map.reshape(b, -1)).reshape(label_map.shape)
    return mask.unsqueeze(1).to(torch.float32)


def labelmix_images(real: Tensor, fake: Tensor, mask: Tensor) -> Tensor:
    return mask * real + (1.0 - mask) * fake


def labelmix_loss(mixed_logits: Tensor, real_logits: Tensor, fake_logits: Tensor, mask: Tensor) -> Tensor:
    """LabelMix consistency: D(mix(real, fake)) should equal mix(D(real), D(fake))."""
    target = mask * real_logits + (1.0 - mask) * fake_logits
    return F.mse_loss(mixed_logits, target)
