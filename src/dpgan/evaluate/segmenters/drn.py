"""DRN-D-105 for Cityscapes (fyu/drn `DRNSeg`), the segmenter behind SPADE/OASIS/DP-GAN mIoU.

Architecture from docs/evaluation.md 2.2: a dilated ResNet-105 of output stride 8 whose last stages
trade stride for dilation (2, then 4), two plain conv layers that remove gridding artefacts,
a 1x1 classifier and a fixed bilinear 8x upsampling. Submodule names follow `DRNSeg`, so the
released `drn-d-105_ms_cityscapes.pth` loads strictly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from dpgan.evaluate.segmentation import CITYSCAPES_TRAIN_ID_NAMES
from dpgan.evaluate.segmenters.base import Segmenter, bottleneck_stage, conv_bn_relu
from dpgan.evaluate.weights import TOLERATED_MISSING_SUFFIXES, load_into, load_state_dict_file
from dpgan.names import DRN_WEIGHTS_NAME

# Cityscapes train-set RGB statistics shipped with the checkpoint (fyu/drn info.json).
DRN_CITYSCAPES_MEAN = (0.290101, 0.328081, 0.286964)
DRN_CITYSCAPES_STD = (0.182954, 0.186566, 0.184475)


def bilinear_upsampling_kernel(channels: int, factor: int) -> torch.Tensor:
    """Depthwise transposed-conv kernel (channels x 1 x 2f x 2f) that upsamples by `factor`
    with bilinear interpolation; `DRNSeg` keeps it fixed, so it is rebuilt rather than learnt."""
    size = 2 * factor
    centre = (size - 1) / 2
    profile = 1 - (torch.arange(size, dtype=torch.float64) - centre).abs() / factor
    kernel = (profile[:, None] * profile[None, :]).float()
    return kernel.expand(channels, 1, size, size).clone()


class DRNSeg(Segmenter):
    """DRN-D-105 + 1x1 classifier + fixed 8x bilinear upsampling; 19 Cityscapes trainIds.

    `forward` takes normalised images and returns log-probabilities at 8x the feature size;
    `predict` takes images as generated (OASIS protocol: fed at their own size, 256x512).
    """

    def __init__(self, num_classes: int = 19) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_names = CITYSCAPES_TRAIN_ID_NAMES if num_classes == 19 else tuple(
            str(i) for i in range(num_classes)
        )
        self.base = nn.Sequential(
            conv_bn_relu(3, 16, 7),  # layer0
            conv_bn_relu(16, 16, 3),  # layer1
            conv_bn_relu(16, 32, 3, stride=2),  # layer2: stride 2
            bottleneck_stage(32, 64, 3, stride=2),  # layer3: 256 ch, stride 4
            bottleneck_stage(256, 128, 4, stride=2),  # layer4: 512 ch, stride 8
            bottleneck_stage(512, 256, 23, dilation=2),  # layer5: 1024 ch
            bottleneck_stage(1024, 512, 3, dilation=4),  # layer6: 2048 ch
            conv_bn_relu(2048, 512, 3, dilation=2),  # layer7: de-gridding
            conv_bn_relu(512, 512, 3),  # layer8
        )
        self.seg = nn.Conv2d(512, num_classes, 1, bias=True)
        self.up = nn.ConvTranspose2d(
            num_classes, num_classes, 16, stride=8, padding=4, groups=num_classes, bias=False
        )
        with torch.no_grad():
            self.up.weight.copy_(bilinear_upsampling_kernel(num_classes, 8))
        self.up.weight.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(DRN_CITYSCAPES_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(DRN_CITYSCAPES_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.up(self.seg(self.base(x))), dim=1)

    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[2:]
        scores = self((images - self.mean) / self.std)
        # Output is 8 * ceil(size / 8); pixel i still lies over input pixel i, so crop.
        return scores[:, :, :height, :width]

    @classmethod
    def from_file(cls, path: str | Path | None) -> DRNSeg:
        state_dict, _ = load_state_dict_file(
            path, network="DRN-D-105 Cityscapes", option="--drn", expected_name=DRN_WEIGHTS_NAME
        )
        model = cls(num_classes=19)
        # `up.weight` is a fixed bilinear kernel: rebuilt here if a file leaves it out.
        tolerated = (*TOLERATED_MISSING_SUFFIXES, "up.weight")
        load_into(model, state_dict, source=str(path), tolerated_missing_suffixes=tolerated)
        return model.eval()
