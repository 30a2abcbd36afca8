"""UperNet-101 for ADE20K (CSAILVision mit_semseg `ade20k-resnet101-upernet`, docs/evaluation.md 2.4).

A non-dilated ResNet-101 with a deep 3-conv stem gives features at strides 4/8/16/32; the
UperNet decoder (pyramid pooling on the last one, then an FPN) fuses them at stride 4. The
released model is two files, `encoder_epoch_50.pth` and `decoder_epoch_50.pth`, whose keys
match `encoder.*` and `decoder.*` here without the prefix.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dpgan.evaluate.segmenters.base import Segmenter, bottleneck_stage, conv_bn_relu
from dpgan.evaluate.weights import load_into, load_state_dict_file
from dpgan.names import UPERNET_DECODER_NAME, UPERNET_ENCODER_NAME

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PADDING_CONSTANT = 32  # input sides are rounded up to this (by resizing, not padding)
MAX_SIZE = 1000  # mit_semseg's imgMaxSize
ADE20K_CLASS_NAMES: tuple[str, ...] = tuple(
    "wall|building|sky|floor|tree|ceiling|road|bed|windowpane|grass|cabinet|sidewalk|person|"
    "earth|door|table|mountain|plant|curtain|chair|car|water|painting|sofa|shelf|house|sea|"
    "mirror|rug|field|armchair|seat|fence|desk|rock|wardrobe|lamp|bathtub|railing|cushion|base|"
    "box|column|signboard|chest of drawers|counter|sand|sink|skyscraper|fireplace|refrigerator|"
    "grandstand|path|stairs|runway|case|pool table|pillow|screen door|stairway|river|bridge|"
    "bookcase|blind|coffee table|toilet|flower|book|hill|bench|countertop|stove|palm|"
    "kitchen island|computer|swivel chair|boat|bar|arcade machine|hovel|bus|towel|light|truck|"
    "tower|chandelier|awning|streetlight|booth|television receiver|airplane|dirt track|apparel|"
    "pole|land|bannister|escalator|ottoman|bottle|buffet|poster|stage|van|ship|fountain|"
    "conveyer belt|canopy|washer|plaything|swimming pool|stool|barrel|basket|waterfall|tent|bag|"
    "minibike|cradle|oven|ball|food|step|tank|trade name|microwave|pot|animal|bicycle|lake|"
    "dishwasher|screen|blanket|sculpture|hood|sconce|vase|traffic light|tray|ashcan|fan|pier|"
    "crt screen|plate|monitor|bulletin board|shower|radiator|glass|clock|flag".split("|")
)


class ResNet101Encoder(nn.Module):
    """mit_semseg `resnet101` (deep stem, no dilation) returning C2..C5 (strides 4..32)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(64, 128, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(128)
        self.relu3 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = bottleneck_stage(128, 64, 3)
        self.layer2 = bottleneck_stage(256, 128, 4, stride=2)
        self.layer3 = bottleneck_stage(512, 256, 23, stride=2)
        self.layer4 = bottleneck_stage(1024, 512, 3, stride=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.maxpool(self.relu3(self.bn3(self.conv3(x))))
        features = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features


def _resize(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


class UPerNetDecoder(nn.Module):
    """Pyramid pooling (scales 1, 2, 3, 6) on C5 + FPN over C2..C4 + fusion at stride 4."""

    def __init__(
        self,
        num_classes: int = 150,
        in_channels: tuple[int, ...] = (256, 512, 1024, 2048),
        fpn_dim: int = 512,
        pool_scales: tuple[int, ...] = (1, 2, 3, 6),
    ) -> None:
        super().__init__()
        top = in_channels[-1]
        self.ppm_pooling = nn.ModuleList(nn.AdaptiveAvgPool2d(s) for s in pool_scales)
        self.ppm_conv = nn.ModuleList(conv_bn_relu(top, 512, 1) for _ in pool_scales)
        self.ppm_last_conv = conv_bn_relu(top + len(pool_scales) * 512, fpn_dim, 3)
        self.fpn_in = nn.ModuleList(conv_bn_relu(c, fpn_dim, 1) for c in in_channels[:-1])
        self.fpn_out = nn.ModuleList(
            nn.Sequential(conv_bn_relu(fpn_dim, fpn_dim, 3)) for _ in in_channels[:-1]
        )
        self.conv_last = nn.Sequential(
            conv_bn_relu(len(in_channels) * fpn_dim, fpn_dim, 3),
            nn.Conv2d(fpn_dim, num_classes, 1, bias=True),
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """C2..C5 -> class logits at C2's resolution (stride 4)."""
        c5 = features[-1]
        # mit_semseg upsamples each pooled map *before* its conv+BN+ReLU.
        pyramid = [c5] + [
            conv(_resize(pool(c5), c5.shape[2:]))
            for pool, conv in zip(self.ppm_pooling, self.ppm_conv, strict=True)
        ]
        f = self.ppm_last_conv(torch.cat(pyramid, dim=1))
        levels = [f]
        for i in reversed(range(len(features) - 1)):
            lateral = self.fpn_in[i](features[i])
            f = lateral + _resize(f, lateral.shape[2:])  # the running sum is propagated
            levels.append(self.fpn_out[i](f))
        levels.reverse()  # P2 .. P5
        size = levels[0].shape[2:]
        fused = torch.cat([levels[0]] + [_resize(p, size) for p in levels[1:]], dim=1)
        return self.conv_last(fused)


class UperNet101(Segmenter):
    """ResNet-101 + UperNet, 150 ADE20K classes (annotation id minus 1).

    `img_sizes` is mit_semseg's list of short sides: each scale resizes the image so its short
    side is s (long side at most 1000), rounds both sides up to a multiple of 32 (bilinear
    resize), and the softmax maps, brought back to the input size, are averaged. `None` (the
    default) uses one scale at the image's own size, i.e. no resize for 256x256 fakes; the
    released multi-scale validation used (300, 375, 450, 525, 600).
    """

    def __init__(self, num_classes: int = 150, img_sizes: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_names = ADE20K_CLASS_NAMES if num_classes == 150 else tuple(
            str(i) for i in range(num_classes)
        )
        self.img_sizes = img_sizes
        self.encoder = ResNet101Encoder()
        self.decoder = UPerNetDecoder(num_classes=num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised images -> logits at 1/4 of the input size."""
        return self.decoder(self.encoder(x))

    def _scale_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        def round_up(v: int) -> int:
            return ((v - 1) // PADDING_CONSTANT + 1) * PADDING_CONSTANT

        if self.img_sizes is None:
            return [(round_up(height), round_up(width))]
        sizes = []
        for short in self.img_sizes:
            scale = min(short / min(height, width), MAX_SIZE / max(height, width))
            sizes.append((round_up(int(height * scale)), round_up(int(width * scale))))
        return sizes

    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[2:]
        x = (images - self.mean) / self.std
        total = torch.zeros(
            images.shape[0], self.num_classes, height, width, device=images.device
        )
        sizes = self._scale_sizes(height, width)
        for size in sizes:
            # antialias=True follows the PIL bilinear resize mit_semseg applies to images.
            scaled = x if size == (height, width) else F.interpolate(
                x, size=size, mode="bilinear", align_corners=False, antialias=True
            )
            total += torch.softmax(_resize(self(scaled), (height, width)), dim=1)
        return total / len(sizes)

    @classmethod
    def from_file(
        cls,
        path: str | Path | None,
        decoder_path: str | Path | None = None,
        img_sizes: tuple[int, ...] | None = None,
    ) -> UperNet101:
        """`path`: the model-zoo folder holding `encoder_epoch_50.pth` and
        `decoder_epoch_50.pth`, or the encoder file itself when `decoder_path` is given."""
        if decoder_path is None and path is not None and Path(path).is_dir():
            encoder_path: str | Path | None = Path(path) / UPERNET_ENCODER_NAME
            decoder_path = Path(path) / UPERNET_DECODER_NAME
        else:
            encoder_path = path
        model = cls(num_classes=150, img_sizes=img_sizes)
        for part, file, option, name in (
            (model.encoder, encoder_path, "--upernet-encoder", UPERNET_ENCODER_NAME),
            (model.decoder, decoder_path, "--upernet-decoder", UPERNET_DECODER_NAME),
        ):
            state_dict, _ = load_state_dict_file(
                file, network="UperNet-101 ADE20K", option=option, expected_name=name
            )
            load_into(part, state_dict, source=str(file))
        return model.eval()
