"""DRN-D-105, UperNet-101, DeepLab-v2: released key names/shapes, strict reload, shapes, preprocessing.

The nets are full size (50-80M parameters); forwards run once each at tiny inputs.
"""

from __future__ import annotations

import math

import pytest
import torch

from dpgan.errors import CheckpointError, DPGANError
from dpgan.evaluate.segmenters import (
    DEEPLAB_WEIGHTS_NAME,
    DRN_WEIGHTS_NAME,
    UPERNET_DECODER_NAME,
    UPERNET_ENCODER_NAME,
    DeepLabV2,
    DRNSeg,
    UperNet101,
)
from dpgan.evaluate.segmenters.drn import (
    DRN_CITYSCAPES_MEAN,
    DRN_CITYSCAPES_STD,
    bilinear_upsampling_kernel,
)


def assert_shapes(state_dict: dict[str, torch.Tensor], expected: dict[str, list[int]]) -> None:
    for key, shape in expected.items():
        assert key in state_dict, key
        assert list(state_dict[key].shape) == shape, key


def without_batch_counters(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Old checkpoints have no num_batches_tracked; the loader must not need them."""
    return {k: v for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def capture_network_input(
    model: torch.nn.Module, out_channels: int, stride: int, upsampled: bool = False
) -> list[torch.Tensor]:
    """Replace the network by a stub recording what `predict` feeds it; the stub answers with
    zeros at the net's output size (1/stride, or stride * ceil(size/stride) when `upsampled`)."""
    seen: list[torch.Tensor] = []

    def fake_forward(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        h, w = (math.ceil(side / stride) * (stride if upsampled else 1) for side in x.shape[2:])
        return torch.zeros(x.shape[0], out_channels, h, w)

    model.forward = fake_forward  # type: ignore[method-assign]
    return seen


def input_variants(seed: int) -> list[tuple[torch.Tensor, tuple[float, float]]]:
    """The same picture as uint8, as [0, 1] and as generator output in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (1, 3, 16, 24), generator=g, dtype=torch.uint8)
    unit = u8.float() / 255
    return [(u8, (-1.0, 1.0)), (unit, (0.0, 1.0)), (unit * 2 - 1, (-1.0, 1.0))]


# --------------------------------------------------------------------------------------- DRN
def test_drn_keys_shapes_and_strict_reload(tmp_path):
    model = DRNSeg()
    sd = model.state_dict()
    assert_shapes(sd, {
        "base.0.0.weight": [16, 3, 7, 7], "base.0.1.running_var": [16],
        "base.1.0.weight": [16, 16, 3, 3], "base.2.0.weight": [32, 16, 3, 3],
        "base.3.0.conv1.weight": [64, 32, 1, 1], "base.3.0.downsample.0.weight": [256, 32, 1, 1],
        "base.3.2.conv3.weight": [256, 64, 1, 1], "base.4.3.bn3.weight": [512],
        "base.5.22.conv2.weight": [256, 256, 3, 3], "base.6.0.downsample.1.running_mean": [2048],
        "base.7.0.weight": [512, 2048, 3, 3], "base.8.1.bias": [512],
        "seg.weight": [19, 512, 1, 1], "seg.bias": [19], "up.weight": [19, 1, 16, 16],
    })  # fmt: skip
    assert "base.9.0.weight" not in sd and "base.5.23.conv1.weight" not in sd
    base = model.base
    assert base[2][0].stride == (2, 2)
    assert base[3][0].conv2.stride == (2, 2) and base[4][0].conv2.stride == (2, 2)
    assert base[5][0].conv2.dilation == (2, 2) and base[6][2].conv2.dilation == (4, 4)
    assert base[7][0].dilation == (2, 2) and base[7][0].padding == (2, 2)
    # README: DRN-D-105 has 54.8M parameters with its 1000-way classifier.
    backbone = sum(p.numel() for p in base.parameters())
    assert round((backbone + 512 * 1000 + 1000) / 1e6, 1) == 54.8

    path = tmp_path / DRN_WEIGHTS_NAME
    torch.save(without_batch_counters(sd), path)
    assert_same_tensors(without_batch_counters(sd), DRNSeg.from_file(path).state_dict())

    no_up = {k: v for k, v in sd.items() if k != "up.weight"}  # fixed kernel may be absent
    torch.save(no_up, path)
    assert torch.equal(DRNSeg.from_file(path).up.weight, bilinear_upsampling_kernel(19, 8))
    del no_up["seg.bias"]
    torch.save(no_up, path)
    with pytest.raises(CheckpointError, match="seg.bias"):
        DRNSeg.from_file(path)
    with pytest.raises(DPGANError, match=f"--drn.*{DRN_WEIGHTS_NAME}"):
        DRNSeg.from_file(tmp_path / "absent.pth")


def test_drn_bilinear_kernel_is_fyu_fill_up_weights():
    kernel = bilinear_upsampling_kernel(3, 8)
    f, c = 8, 15 / 16  # fyu/drn: f = ceil(16 / 2), c = (2f - 1 - f % 2) / 2f
    for i in range(16):
        for j in range(16):
            expected = (1 - abs(i / f - c)) * (1 - abs(j / f - c))
            assert kernel[2, 0, i, j].item() == pytest.approx(expected, abs=1e-7)


def test_drn_forward_and_predict_shapes():
    model = DRNSeg().eval()
    x = torch.rand(1, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        log_probs = model(x)
    assert log_probs.shape == (1, 19, 64, 128)
    assert torch.allclose(log_probs.exp().sum(dim=1), torch.ones(1, 64, 128), atol=1e-4)
    labels = model.predict(torch.rand(1, 3, 60, 100) * 2 - 1)  # not a multiple of 8: cropped
    assert labels.shape == (1, 60, 100) and labels.dtype == torch.int64
    assert 0 <= int(labels.min()) and int(labels.max()) < 19
    assert model.num_classes == 19 and model.class_names[0] == "road" and model.class_names[18] == "bicycle"


def test_drn_preprocessing():
    model = DRNSeg()
    seen = capture_network_input(model, 19, 8, upsampled=True)
    for images, value_range in input_variants(0):
        assert model.predict(images, value_range=value_range).shape == (1, 16, 24)
    unit = input_variants(0)[1][0]
    mean = torch.tensor(DRN_CITYSCAPES_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(DRN_CITYSCAPES_STD).view(1, 3, 1, 1)
    for x in seen:
        assert torch.allclose(x, (unit - mean) / std, atol=1e-5)


# ----------------------------------------------------------------------------------- UperNet
def test_upernet_keys_shapes_and_strict_reload(tmp_path):
    model = UperNet101()
    encoder, decoder = model.encoder.state_dict(), model.decoder.state_dict()
    assert_shapes(encoder, {
        "conv1.weight": [64, 3, 3, 3], "bn1.running_var": [64], "conv2.weight": [64, 64, 3, 3],
        "conv3.weight": [128, 64, 3, 3], "bn3.weight": [128],
        "layer1.0.conv1.weight": [64, 128, 1, 1], "layer1.0.downsample.0.weight": [256, 128, 1, 1],
        "layer2.3.conv3.weight": [512, 128, 1, 1], "layer3.22.conv2.weight": [256, 256, 3, 3],
        "layer4.0.downsample.1.running_mean": [2048], "layer4.2.bn3.bias": [2048],
    })  # fmt: skip
    assert_shapes(decoder, {
        "ppm_conv.0.0.weight": [512, 2048, 1, 1], "ppm_conv.3.1.running_var": [512],
        "ppm_last_conv.0.weight": [512, 4096, 3, 3], "fpn_in.0.0.weight": [512, 256, 1, 1],
        "fpn_in.2.0.weight": [512, 1024, 1, 1], "fpn_out.2.0.0.weight": [512, 512, 3, 3],
        "fpn_out.0.0.1.bias": [512], "conv_last.0.0.weight": [512, 2048, 3, 3],
        "conv_last.1.weight": [150, 512, 1, 1], "conv_last.1.bias": [150],
    })  # fmt: skip
    assert not any(k.startswith(("fc.", "avgpool")) for k in encoder)
    assert model.encoder.layer2[0].conv2.stride == (2, 2) and model.encoder.layer4[0].conv2.dilation == (1, 1)

    zoo = tmp_path / "ade20k-resnet101-upernet"
    zoo.mkdir()
    torch.save(without_batch_counters(encoder), zoo / UPERNET_ENCODER_NAME)
    torch.save(without_batch_counters(decoder), zoo / UPERNET_DECODER_NAME)
    assert_same_tensors(model.state_dict(), UperNet101.from_file(zoo).state_dict())
    with pytest.raises(CheckpointError, match="missing keys"):  # files swapped
        UperNet101.from_file(zoo / UPERNET_DECODER_NAME, zoo / UPERNET_ENCODER_NAME)
    with pytest.raises(DPGANError, match=f"--upernet-decoder.*{UPERNET_DECODER_NAME}"):
        UperNet101.from_file(zoo / UPERNET_ENCODER_NAME, tmp_path / "absent.pth")


def test_upernet_forward_and_predict_shapes():
    model = UperNet101().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.encoder(x)
        logits = model.decoder(features)
    assert [tuple(f.shape[1:]) for f in features] == [(256, 16, 16), (512, 8, 8), (1024, 4, 4), (2048, 2, 2)]
    assert logits.shape == (1, 150, 16, 16)
    labels = model.predict(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert labels.shape == (1, 64, 64) and 0 <= int(labels.min()) and int(labels.max()) < 150
    assert model.num_classes == 150 and len(model.class_names) == 150
    assert model.class_names[0] == "wall" and model.class_names[149] == "flag"


def test_upernet_resize_policy_and_preprocessing():
    # mit_semseg: short side to s, long side <= 1000, both rounded up to a multiple of 32.
    assert UperNet101(img_sizes=(300, 375))._scale_sizes(256, 256) == [(320, 320), (384, 384)]
    # 256x512, s=600: the long-side cap wins (scale 1000/512), 500x1000 -> 512x1024.
    assert UperNet101(img_sizes=(600,))._scale_sizes(256, 512) == [(512, 1024)]
    model = UperNet101()  # default: one scale at the input's own size (256x256 stays 256x256)
    assert model._scale_sizes(256, 256) == [(256, 256)] and model._scale_sizes(250, 250) == [(256, 256)]
    seen = capture_network_input(model, 150, 4)
    for images, value_range in input_variants(1):
        assert model.predict(images, value_range=value_range).shape == (1, 16, 24)
    unit = input_variants(1)[1][0]
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = torch.nn.functional.interpolate(
        (unit - mean) / std, size=(32, 32), mode="bilinear", align_corners=False, antialias=True
    )
    for x in seen:
        assert x.shape == (1, 3, 32, 32) and torch.allclose(x, expected, atol=1e-5)


# ------------------------------------------------------------------------------------ DeepLab
def test_deeplab_keys_shapes_and_strict_reload(tmp_path):
    model = DeepLabV2()
    sd = model.state_dict()
    assert_shapes(sd, {
        "base.layer1.conv1.conv.weight": [64, 3, 7, 7], "base.layer1.conv1.bn.running_mean": [64],
        "base.layer2.block1.shortcut.conv.weight": [256, 64, 1, 1],
        "base.layer2.block1.reduce.conv.weight": [64, 64, 1, 1],
        "base.layer3.block4.increase.bn.weight": [512],
        "base.layer4.block23.conv3x3.conv.weight": [256, 256, 3, 3],
        "base.layer5.block1.shortcut.bn.running_var": [2048],
        "base.layer5.block3.increase.conv.weight": [2048, 512, 1, 1],
        "base.aspp.c0.weight": [182, 2048, 3, 3], "base.aspp.c3.bias": [182],
    })  # fmt: skip
    assert "base.layer2.block2.shortcut.conv.weight" not in sd
    net = model.base
    assert net.layer3.block1.reduce.conv.stride == (2, 2)  # Caffe style: stride on the 1x1
    assert net.layer4.block1.reduce.conv.stride == (1, 1)
    assert net.layer4.block5.conv3x3.conv.dilation == (2, 2)
    assert net.layer5.block2.conv3x3.conv.dilation == (4, 4)
    assert [c.dilation[0] for c in net.aspp.children()] == [6, 12, 18, 24]
    assert net.layer1.conv1.bn.eps == 1e-5 and net.layer1.pool.ceil_mode

    path = tmp_path / DEEPLAB_WEIGHTS_NAME
    torch.save(without_batch_counters(sd), path)
    assert_same_tensors(sd, DeepLabV2.from_file(path).state_dict())
    torch.save({k: v for k, v in sd.items() if not k.startswith("base.aspp.c3")}, path)
    with pytest.raises(CheckpointError, match="base.aspp.c3"):
        DeepLabV2.from_file(path)
    with pytest.raises(DPGANError, match=f"--deeplab.*{DEEPLAB_WEIGHTS_NAME}"):
        DeepLabV2.from_file(tmp_path / "absent.pth")


def test_deeplab_forward_and_predict_shapes():
    model = DeepLabV2().eval()
    with torch.no_grad():
        assert model.base.layer1(torch.zeros(1, 3, 256, 256)).shape == (1, 64, 65, 65)  # ceil-mode pool
        x = torch.randn(1, 3, 64, 64) * 50
        single = model.base(x)
        multi = model(x)  # max over 1, 0.5 and 0.75 scales
    assert single.shape == (1, 182, 9, 9) and multi.shape == single.shape
    assert bool((multi >= single - 1e-4).all())
    labels = model.predict(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert labels.shape == (1, 64, 64) and 0 <= int(labels.min()) and int(labels.max()) < 182
    assert model.num_classes == 182 and len(model.class_names) == 182
    assert model.class_names[0] == "person" and model.class_names[181] == "wood"


def test_deeplab_preprocessing_is_bgr_minus_caffe_mean():
    model = DeepLabV2()
    seen = capture_network_input(model, 182, 8)
    for images, value_range in input_variants(2):
        assert model.predict(images, value_range=value_range).shape == (1, 16, 24)
    unit = input_variants(2)[1][0]
    bgr_mean = torch.tensor([104.008, 116.669, 122.675]).view(1, 3, 1, 1)
    for x in seen:
        assert torch.allclose(x, unit[:, [2, 1, 0]] * 255 - bgr_mean, atol=1e-3)
