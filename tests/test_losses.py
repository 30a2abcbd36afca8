"""The losses must fail loudly if alpha_c, the fake class or a sign were wrong."""

import math

import torch
import torch.nn.functional as F

from dpgan import losses


def test_alpha_c_is_inverse_frequency_over_present_classes():
    # 8 pixels: class 0 six times, class 2 twice; classes 1 and 3 absent
    label = torch.tensor([[[0, 0, 0, 0], [0, 0, 2, 2]]])
    w = losses.class_balance_weights(label, num_classes=4)
    # w_c = (B*H*W) / (K * count_c), K = 2 present classes
    torch.testing.assert_close(w, torch.tensor([8 / (2 * 6), 0.0, 8 / (2 * 2), 0.0]))
    # each present class carries the same total weight: numel / K
    counts = torch.bincount(label.flatten(), minlength=4).float()
    torch.testing.assert_close(w * counts, torch.tensor([4.0, 0.0, 4.0, 0.0]))


def test_alpha_c_gives_dont_care_weight_zero_and_excludes_it_from_k():
    label = torch.tensor([[[0, 0, 0, 0], [0, 0, 2, 2]]])
    w = losses.class_balance_weights(label, num_classes=4, ignore_index=0)
    torch.testing.assert_close(w, torch.tensor([0.0, 0.0, 8 / (1 * 2), 0.0]))


def _confident(label_map, num_logits, shift):
    """Logits with a large value at channel label + shift."""
    b, h, w = label_map.shape
    logits = torch.full((b, num_logits, h, w), -10.0)
    logits.scatter_(1, (label_map + shift).unsqueeze(1), 10.0)
    return logits


def test_real_pixels_target_class_plus_one_and_fake_pixels_target_zero():
    label = torch.randint(0, 5, (2, 4, 6))
    right = _confident(label, 6, shift=1)  # semantic class c lives at channel c + 1
    wrong = _confident(label, 6, shift=0)
    assert losses.pixel_loss(right, label, real=True) < 1e-3
    assert losses.pixel_loss(wrong, label, real=True) > 10
    fake_right = torch.full((2, 6, 4, 6), -10.0)
    fake_right[:, 0] = 10.0
    assert losses.pixel_loss(fake_right, label, real=False) < 1e-3
    assert losses.pixel_loss(right, label, real=False) > 10


def test_weighted_pixel_loss_matches_hand_computation():
    torch.manual_seed(0)
    label = torch.randint(0, 3, (2, 4, 4))
    logits = torch.randn(2, 4, 4, 4)
    alpha = losses.class_balance_weights(label, 3)
    ce = torch.nn.functional.cross_entropy(logits, label + 1, reduction="none")
    expected = (ce * alpha[label]).mean()
    torch.testing.assert_close(losses.pixel_loss(logits, label, real=True, class_weights=alpha), expected)


def test_patch_hinge_losses_have_the_right_margins_and_signs():
    ones = [torch.ones(2, 1, 3, 3), torch.ones(2, 1, 1, 1)]
    # confident and correct beyond the margin: no loss
    assert losses.patch_loss_d([2 * o for o in ones], [-2 * o for o in ones]) == 0
    # undecided (scores 0): 1 for real + 1 for fake per head, averaged over heads
    torch.testing.assert_close(losses.patch_loss_d([0 * o for o in ones], [0 * o for o in ones]), torch.tensor(2.0))
    # D is rewarded for raising real scores and lowering fake ones
    real = torch.zeros(2, 1, 3, 3, requires_grad=True)
    fake = torch.zeros(2, 1, 3, 3, requires_grad=True)
    losses.patch_loss_d([real], [fake]).backward()
    assert (real.grad < 0).all() and (fake.grad > 0).all()
    # G is rewarded for raising the score of its images
    fake_g = torch.zeros(2, 1, 3, 3, requires_grad=True)
    losses.patch_loss_g([fake_g]).backward()
    assert (fake_g.grad < 0).all()


def test_feature_matching_is_normalised_per_tap_and_summed():
    r1, r2 = torch.zeros(2, 3, 4, 4), torch.zeros(2, 8, 2, 2)
    f1, f2 = torch.ones(2, 3, 4, 4), 2 * torch.ones(2, 8, 2, 2)
    # ||diff||^2 / (C H W) per image: 1 for tap 1, 4 for tap 2, whatever the sizes
    torch.testing.assert_close(losses.feature_matching_loss([f1, f2], [r1, r2]), torch.tensor(5.0))
    assert losses.feature_matching_loss([r1], [r1]) == 0


def test_feature_matching_sends_no_gradient_to_real_features():
    real = torch.randn(1, 2, 3, 3, requires_grad=True)
    fake = torch.randn(1, 2, 3, 3, requires_grad=True)
    losses.feature_matching_loss([fake], [real]).backward()
    assert real.grad is None and fake.grad is not None


def test_labelmix_mask_is_one_coin_per_image_and_class():
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, 6, (16, 8, 8), generator=g)
    mask = losses.labelmix_mask(label, 6, generator=g)
    assert mask.shape == (16, 1, 8, 8)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    differing = 0
    for b in range(16):
        for c in label[b].unique():
            values = mask[b, 0][label[b] == c]
            assert values.min() == values.max()  # a whole class region takes one side
        coins = {int(c): float(mask[b, 0][label[b] == c][0]) for c in label[b].unique()}
        differing += len(set(coins.values())) > 1
    assert differing > 8  # classes get independent coins, not one coin for all
    # the same class is not forced to one side across the batch
    per_image = [float(mask[b, 0][label[b] == 0][0]) for b in range(16) if (label[b] == 0).any()]
    assert len(set(per_image)) == 2


def test_labelmix_loss_is_zero_for_a_pixelwise_discriminator():
    real, fake = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    mask = losses.labelmix_mask(torch.randint(0, 3, (2, 4, 4)), 3)
    mixed = losses.labelmix_images(real, fake, mask)
    torch.testing.assert_close(mixed, torch.where(mask.bool(), real, fake))
    w = torch.randn(5, 3)

    def d(x):  # a per-pixel linear "discriminator" commutes with pixel-wise mixing
        return torch.einsum("oc,bchw->bohw", w, x)

    assert losses.labelmix_loss(d(mixed), d(real), d(fake), mask) < 1e-10
    assert losses.labelmix_loss(d(mixed) + 1, d(real), d(fake), mask) > 0.5


def test_segmentation_diagnostics_tell_a_segmenting_d_from_a_guessing_one():
    label_map = torch.randint(0, 4, (2, 8, 8))
    guessing = torch.zeros(2, 5, 8, 8)  # uniform over N + 1 = 5 classes
    perfect = F.one_hot(label_map + 1, 5).permute(0, 3, 1, 2).float() * 20.0
    g = losses.segmentation_diagnostics(guessing, label_map)
    p = losses.segmentation_diagnostics(perfect, label_map)
    assert torch.isclose(g["train/d_real_ce"], torch.tensor(math.log(5.0)))
    assert p["train/d_real_ce"] < 1e-6 and p["train/d_real_acc"] == 1.0
    assert not g["train/d_real_ce"].requires_grad


def test_segmentation_accuracy_leaves_the_fake_class_out():
    label_map = torch.randint(0, 4, (2, 8, 8))
    segments_but_says_fake = F.one_hot(label_map + 1, 5).permute(0, 3, 1, 2).float() * 2.0
    segments_but_says_fake[:, 0] = 5.0  # the fake channel wins the (N+1)-way argmax everywhere
    d = losses.segmentation_diagnostics(segments_but_says_fake, label_map)
    assert d["train/d_real_acc"] == 1.0
    assert d["train/d_real_ce"] > 1.0


def test_semantic_segmentation_loss_ignores_the_fake_channel_and_dont_care_pixels():
    label_map = torch.randint(1, 4, (2, 8, 8))
    logits = F.one_hot(label_map + 1, 5).permute(0, 3, 1, 2).float() * 4.0
    plain = losses.semantic_segmentation_loss(logits, label_map)
    logits_fake = logits.clone()
    logits_fake[:, 0] = 50.0  # D sure every pixel is fake: the term does not care
    assert torch.isclose(losses.semantic_segmentation_loss(logits_fake, label_map), plain)
    expected = F.cross_entropy(logits[:, 1:], label_map)
    assert torch.isclose(plain, expected)
    wrong = label_map.clone()
    wrong[:, :4] = 0  # class 0 = don't care here: these pixels are wrong but left out
    assert torch.isclose(losses.semantic_segmentation_loss(logits, wrong, ignore_index=0), plain)
    assert losses.semantic_segmentation_loss(logits, wrong) > plain + 0.1
