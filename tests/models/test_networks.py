import pytest
import torch
import torch.nn.functional as F

from dpgan.models import GeneratorOptions, build_discriminator, build_generator
from dpgan.models.spade import resize_nearest

N = 7


def _labels(b=2, h=64, w=128):
    return torch.randint(0, N, (b, h, w))


@pytest.mark.parametrize("kind", ["oa", "dp"])
def test_generator_shapes_and_range(kind):
    g = build_generator(GeneratorOptions(kind, width=4, z_dim=8, pyramid_width=8, spade_hidden=8), N)
    out = g(_labels())
    assert out.shape == (2, 3, 64, 128) and out.abs().max() <= 1


@pytest.mark.parametrize("kind", ["oa", "dp"])
def test_a_given_z_is_used(kind):
    g = build_generator(GeneratorOptions(kind, width=4, z_dim=8, pyramid_width=8, spade_hidden=8), N).eval()
    lab = _labels()
    z1, z2 = torch.randn(2, 8), torch.randn(2, 8)
    assert torch.equal(g(lab, z1), g(lab, z1))
    assert not torch.allclose(g(lab, z1), g(lab, z2))
    # a (B, z_dim) vector equals the same vector broadcast into a noise map
    zmap = z1[:, :, None, None].expand(2, 8, 64, 128)
    torch.testing.assert_close(g(lab, z1), g(lab, zmap))
    # ids and one-hot give the same image
    onehot = torch.nn.functional.one_hot(lab, N).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(g(lab, z1), g(onehot, z1))


def test_a_noise_map_is_used_region_by_region():
    g = build_generator(GeneratorOptions("dp", width=4, z_dim=8, pyramid_width=8), N).eval()
    lab = _labels(1)
    z = torch.randn(1, 8)[:, :, None, None].expand(1, 8, 64, 128).clone()
    z2 = z.clone()
    z2[..., 96:] = torch.randn(1, 8, 1, 1)  # another vector in the right quarter only
    assert not torch.allclose(g(lab, z), g(lab, z2))


@pytest.mark.parametrize("kind", ["oa", "dp"])
def test_without_3d_noise(kind):
    g = build_generator(GeneratorOptions(kind, width=4, use_3d_noise=False, pyramid_width=8, spade_hidden=8), N).eval()
    lab = _labels()
    assert g.z_dim == 0 and torch.equal(g(lab), g(lab))


def test_bad_label_maps_are_refused():
    g = build_generator(GeneratorOptions("dp", width=4, z_dim=8, pyramid_width=8), N)
    with pytest.raises(ValueError, match="outside"):
        g(torch.full((1, 64, 128), N))
    with pytest.raises(ValueError, match="multiple of 32"):
        g(torch.zeros(1, 48, 128, dtype=torch.long))


@pytest.mark.parametrize("heads,n_scores", [("none", 0), ("enc", 2), ("dec", 2), ("enc+dec", 4)])
def test_discriminator_outputs(heads, n_scores):
    d = build_discriminator(N, width=4, patch_heads=heads)
    out = d(torch.randn(2, 3, 64, 128))
    assert out.logits.shape == (2, N + 1, 64, 128)
    assert len(out.patch_scores) == n_scores
    assert len(out.encoder_features) == 5 and len(out.decoder_features) == 5
    if heads == "enc":  # heads at 1/16 and 1/64, each with a stride-2 conv
        assert [s.shape[-2:] for s in out.patch_scores] == [(2, 4), (1, 1)]
    if heads == "none":
        assert not any("patch" in n for n, _ in d.named_parameters())


@pytest.mark.parametrize("heads", ["dec+enc", "enc+enc", "enc+", "", "none+enc", "all"])
def test_patch_heads_other_than_none_or_enc_then_dec_are_refused(heads):
    with pytest.raises(ValueError, match="patch_heads must be 'none'"):
        build_discriminator(N, width=4, patch_heads=heads)


def test_other_depths_work():
    g = build_generator(GeneratorOptions("dp", width=4, z_dim=8, num_res_blocks=4, pyramid_width=8), N)
    d = build_discriminator(N, width=4, num_res_blocks=4, patch_heads="enc+dec")
    img = g(torch.randint(0, N, (2, 32, 64)))
    out = d(img)
    assert img.shape == (2, 3, 32, 64) and out.logits.shape == (2, N + 1, 32, 64)
    assert len(out.encoder_features) == 3 and len(out.patch_scores) == 3


def test_sn_default_init_leaves_spectral_norm_layers_at_pytorch_default():
    """The CPU preset's scheme; "published" is pinned against the published code in test_init.py."""
    from torch.nn.utils import parametrize

    d = build_discriminator(N, width=8, init="sn-default")
    sn_std = [m.parametrizations.weight.original.std().item() for m in d.modules()
              if parametrize.is_parametrized(m, "weight") and m.weight.dim() == 4 and m.weight.shape[-1] == 3]
    fan_in = [m.parametrizations.weight.original[0].numel() for m in d.modules()
              if parametrize.is_parametrized(m, "weight") and m.weight.dim() == 4 and m.weight.shape[-1] == 3]
    # PyTorch's default conv init: uniform with bound 1/sqrt(fan_in), std 1/sqrt(3 fan_in)
    for std, fan in zip(sn_std, fan_in):
        assert abs(std - (3 * fan) ** -0.5) < 0.3 * (3 * fan) ** -0.5
    last = d.layer_up_last.weight  # no spectral norm: Xavier-normal, gain 0.02
    expected = 0.02 * (2 / (last.shape[1] + last.shape[0])) ** 0.5
    assert abs(last.std().item() - expected) < 0.5 * expected


@pytest.mark.parametrize("size", [(64, 128), (2, 4), (8, 16), (16, 16), (3, 5), (48, 96), (128, 256)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_resize_nearest_equals_interpolate(size, channels_last):
    x = torch.randn(2, 5, 64, 128)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    assert torch.equal(resize_nearest(x, size), F.interpolate(x, size=size, mode="nearest"))


def test_encoder_heads_counted_from_the_bottleneck_keep_two_heads_at_four_blocks():
    from dpgan.models.discriminator import UNetDiscriminator

    def heads(n, from_bottleneck):
        return UNetDiscriminator(4, width=2, num_res_blocks=n, heads_from_bottleneck=from_bottleneck).enc_head_at

    assert heads(6, False) == heads(6, True) == [3, 5]  # the published blocks
    assert heads(4, False) == [3] and heads(4, True) == [1, 3]
    assert heads(5, False) == [3, 4] and heads(5, True) == [2, 4]
    assert heads(2, True) == [0, 1]
